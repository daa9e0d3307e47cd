# METADATA
# title: KV-cache events publish prompt token ids
# description: >-
#   KV-cache event streams (vLLM kv_events_config, SGLang kv events for
#   cache-aware routers) announce stored and removed blocks. vLLM's BlockStored
#   events carry the block's token ids, which are the prompt itself, so every
#   subscriber receives a copy of every user's input that outlives the request.
# custom:
#   id: PCC-S-019
#   requirement: S
#   optimization: kv_events
#   severity: high
#   threats: [token ids published on a socket, prompt copies kept by subscribers]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 AC-4", "CWE-200"]
#   mitigation: disable:kv_events
#   message: "KV-cache events carry prompt token ids (endpoint: {observability.kv_events.endpoint})"
#   remediation: Disable KV-cache events, or publish only salted block hashes without token ids.
package pcc.rules.pcc_s_019

import data.pcc.lib
import rego.v1

ev := lib.obs("kv_events")

default applicable := false

applicable if lib.maybe_enabled(ev)

deny contains lib.finding("observability.kv_events.includes_token_ids", {}) if {
	lib.enabled(ev)
	lib.get(ev, "includes_token_ids") == true
}

warn contains lib.unknown_finding("observability.kv_events.enabled") if lib.unknown(ev, "enabled")

warn contains lib.unknown_finding("observability.kv_events.includes_token_ids") if lib.unknown(ev, "includes_token_ids")
