# METADATA
# title: Clients can execute code inside the engine
# description: >-
#   SGLang's --enable-custom-logit-processor accepts a serialized (dill)
#   processor with each request and runs it in the scheduler process. Code a
#   client sends runs beside every other user's state, so no guarantee the
#   engine enforces can be relied on: the client's code can read or change it.
# custom:
#   id: PCC-E-008
#   requirement: E
#   optimization: custom_logit_processors
#   severity: critical
#   threats: [client code runs inside the engine, deserialization of untrusted data]
#   references: ["Apple PCC Security Guide: enforceable guarantees", "CWE-502", "CWE-94", "NIST SP 800-53 CM-7", "OWASP LLM03:2025 Supply Chain"]
#   mitigation: disable:custom_logit_processors
#   message: "Clients can run their own code in the engine (custom_logit_processors: {api.custom_logit_processors})"
#   remediation: Disable client-supplied logit processors (SGLang without --enable-custom-logit-processor); ship vetted processors with the build instead.
package pcc.rules.pcc_e_008

import data.pcc.lib
import rego.v1

clp := lib.fact(["api", "custom_logit_processors"])

default applicable := false

applicable if is_object(lib.fact(["api"]))

deny contains lib.finding("api.custom_logit_processors", {}) if clp == true

warn contains lib.unknown_finding("api.custom_logit_processors") if clp == null
