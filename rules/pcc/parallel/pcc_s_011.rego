# METADATA
# title: Draft-model speculation keeps state across requests
# description: >-
#   Draft-model speculation (draft model, EAGLE, MTP) needs only per-request
#   state. A method or configuration that keeps draft state across requests
#   (a shared draft KV cache, a learned store) turns it into cross-request
#   memory of user data. Database-backed speculation is checked by PCC-S-013.
# custom:
#   id: PCC-S-011
#   requirement: S
#   optimization: speculation
#   severity: high
#   threats: [cross-request state in the draft path, information inference through acceptance timing]
#   references: ["NIST SP 800-53 SC-4", "CWE-226", "Wei et al., arXiv 2411.01076 (speculative-decoding side channels)", "Carlini & Nasr, arXiv 2410.17175 (remote timing attacks on efficient inference)"]
#   mitigation: disable:speculation
#   message: "Speculative decoding ({optimizations.speculation.method}) keeps state across requests: {reason}"
#   remediation: Use a draft-model method whose state is per request, or disable speculative decoding.
package pcc.rules.pcc_s_011

import data.pcc.lib
import rego.v1

sp := lib.opt("speculation")

default applicable := false

applicable if lib.maybe_enabled(sp)

deny contains lib.finding("optimizations.speculation.cross_request_state", {"reason": "cross_request_state is true"}) if {
	lib.enabled(sp)
	lib.get(sp, "cross_request_state") == true
}

deny contains lib.finding("optimizations.speculation.store_scope", {"reason": "its store is scoped beyond the request"}) if {
	lib.enabled(sp)
	lib.get(sp, "store_scope") in {"tenant", "global"}
}

warn contains lib.unknown_finding("optimizations.speculation.enabled") if lib.unknown(sp, "enabled")

warn contains lib.unknown_finding("optimizations.speculation.cross_request_state") if {
	lib.unknown(sp, "cross_request_state")
}
