# METADATA
# title: Responses are stored after the request
# description: >-
#   A response store (the OpenAI Responses API store=true, vLLM
#   VLLM_ENABLE_RESPONSES_API_STORE, SGLang --enable-response-store) keeps
#   completions, and often the inputs, after the request so they can be fetched
#   or continued later; SGLang's store has no TTL or size limit. That is user
#   data kept beyond the request by design.
# custom:
#   id: PCC-S-022
#   requirement: S
#   optimization: response_store
#   severity: high
#   threats: [completions kept after the request, responses fetched by id]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SI-12", "Apple PCC Security Guide: stateless computation", "GDPR Art. 5(1)(e)"]
#   mitigation: disable:response_store
#   message: "Responses are stored after the request is fulfilled"
#   remediation: Disable the response store; keep conversation state on the client.
package pcc.rules.pcc_s_022

import data.pcc.lib
import rego.v1

store := lib.obs("response_store")

default applicable := false

applicable if is_object(store)

deny contains lib.finding("observability.response_store.enabled", {}) if lib.enabled(store)

warn contains lib.unknown_finding("observability.response_store.enabled") if lib.unknown(store, "enabled")
