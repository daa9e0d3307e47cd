# METADATA
# title: Context speculation keeps its tables beyond the request
# description: >-
#   Prompt-lookup (n-gram) speculation drafts tokens from the request's own
#   context and is harmless while its tables live and die with the request. An
#   implementation that keeps the tables after the request, or shares them
#   between requests, retains user text and proposes it to later requests.
# custom:
#   id: PCC-S-012
#   requirement: S
#   optimization: context_speculation
#   severity: medium
#   threats: [n-gram tables kept beyond the request, tokens proposed to other requests]
#   references: ["NIST SP 800-53 SC-4", "NIST SP 800-53 SI-12", "CWE-226", "Wei et al., arXiv 2411.01076 (speculative-decoding side channels)"]
#   mitigation: disable:context_speculation
#   message: "Context speculation ({optimizations.context_speculation.method}) keeps n-gram state beyond the request: {reason}"
#   remediation: Use a prompt-lookup method whose tables are built per request and dropped at its end (vLLM ngram), or disable it.
package pcc.rules.pcc_s_012

import data.pcc.lib
import rego.v1

cs := lib.opt("context_speculation")

default applicable := false

applicable if lib.maybe_enabled(cs)

deny contains lib.finding("optimizations.context_speculation.cross_request_state", {"reason": "cross_request_state is true"}) if {
	lib.enabled(cs)
	lib.get(cs, "cross_request_state") == true
}

deny contains lib.finding("optimizations.context_speculation.store_scope", {"reason": "its tables are scoped beyond the request"}) if {
	lib.enabled(cs)
	lib.get(cs, "store_scope") in {"tenant", "global"}
}

warn contains lib.unknown_finding("optimizations.context_speculation.enabled") if lib.unknown(cs, "enabled")

warn contains lib.unknown_finding("optimizations.context_speculation.cross_request_state") if {
	lib.unknown(cs, "cross_request_state")
}
