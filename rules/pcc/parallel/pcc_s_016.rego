# METADATA
# title: Sequence parallelism spreads request state across hosts unencrypted
# description: >-
#   Sequence (context) parallelism splits a request's activations and KV across devices.
#   Within one host the shards stay inside the node; across hosts they travel
#   over the network (NCCL over RoCE or TCP is not encrypted), so user state
#   exists outside one trust boundary in the clear. Cross-host parallelism needs
#   an encrypted interconnect between attested hosts, as PCC's ensembles use.
# custom:
#   id: PCC-S-016
#   requirement: S
#   optimization: sequence_parallelism
#   severity: high
#   threats: [state spread across hosts outside one trust boundary, activations read in transit]
#   references: ["NIST SP 800-53 SC-8", "CWE-319", "Apple PCC Security Guide: stateless computation"]
#   mitigation: encrypt_transfer
#   message: "Sequence parallelism (size {optimizations.sequence_parallelism.size}) crosses hosts over an unencrypted interconnect"
#   remediation: Keep the parallel group on one host, or encrypt the interconnect between attested hosts (pccguard mitigation encrypt_transfer).
package pcc.rules.pcc_s_016

import data.pcc.lib
import rego.v1

par := lib.opt("sequence_parallelism")

default applicable := false

applicable if {
	lib.maybe_enabled(par)
	lib.get(par, "size") != 1
}

deny contains lib.finding("optimizations.sequence_parallelism.encrypted_interconnect", {}) if {
	lib.enabled(par)
	lib.get(par, "crosses_hosts") == true
	lib.get(par, "encrypted_interconnect") == false
}

warn contains lib.unknown_finding("optimizations.sequence_parallelism.enabled") if lib.unknown(par, "enabled")

warn contains lib.unknown_finding("optimizations.sequence_parallelism.crosses_hosts") if lib.unknown(par, "crosses_hosts")

warn contains lib.unknown_finding("optimizations.sequence_parallelism.encrypted_interconnect") if {
	lib.get(par, "crosses_hosts") == true
	lib.unknown(par, "encrypted_interconnect")
}
