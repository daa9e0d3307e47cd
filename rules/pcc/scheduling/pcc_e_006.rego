# METADATA
# title: A global scheduler outside the trust boundary places requests
# description: >-
#   A machine-level scheduler or router (llm-d, Dynamo's router, SGLang's
#   router, a cache-aware gateway) decides which node serves each request. When
#   it runs outside the attested trust boundary, placement, and everything that
#   depends on it, rests on a component nobody can verify, and it sees request
#   metadata (and, for prefix-aware routing, prompt content).
# custom:
#   id: PCC-E-006
#   requirement: E
#   optimization: machine_level_scheduler
#   severity: high
#   threats: [a component outside the trust boundary decides placement, steering to compromised nodes]
#   references: ["Apple PCC Security Guide: enforceable guarantees", "NIST SP 800-53 SC-7", "NIST SP 800-53 SA-8"]
#   mitigation: attested_build
#   message: "A global scheduler outside the trust boundary decides placement (inside_trust_boundary: {optimizations.machine_level_scheduler.inside_trust_boundary})"
#   remediation: Run the scheduler as an attested, measured component inside the trust boundary (pccguard mitigation attested_build), or route without a global scheduler (client-side choice among attested nodes).
package pcc.rules.pcc_e_006

import data.pcc.lib
import rego.v1

ms := lib.opt("machine_level_scheduler")

default applicable := false

applicable if lib.maybe_enabled(ms)

deny contains lib.finding("optimizations.machine_level_scheduler.inside_trust_boundary", {}) if {
	lib.enabled(ms)
	lib.get(ms, "inside_trust_boundary") == false
}

warn contains lib.unknown_finding("optimizations.machine_level_scheduler.enabled") if lib.unknown(ms, "enabled")

warn contains lib.unknown_finding("optimizations.machine_level_scheduler.inside_trust_boundary") if {
	lib.unknown(ms, "inside_trust_boundary")
}
