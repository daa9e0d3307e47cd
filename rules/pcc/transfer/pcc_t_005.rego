# METADATA
# title: Disaggregated prefill KV can be steered to hosts outside the node
# description: >-
#   Prefill/decode disaggregation hands every request's KV from a prefill
#   instance to a decode instance picked at run time. Which decode node
#   receives which user's KV is a placement decision an attacker can aim for.
#   Unless the profile allows KV to cross hosts (allow_cross_host_kv), any KV
#   leaving the node fails; where it is allowed, the transfer must run over an
#   authenticated, encrypted channel, so that only attested peers can receive
#   or request a given user's KV.
# custom:
#   id: PCC-T-005
#   requirement: T
#   optimization: disaggregated_prefill
#   severity: high
#   threats: [targeting through placement, rogue peer receives a chosen user's KV, KV read in transit]
#   references: ["Apple PCC Security Guide: non-targetability", "NIST SP 800-53 SC-8", "NIST SP 800-53 SC-23", "CWE-319"]
#   mitigation: encrypt_transfer
#   message: "Disaggregated prefill KV crosses hosts (backend: {optimizations.disaggregated_prefill.backend}): {reason}"
#   remediation: Keep KV on the node, or move it only over an authenticated, encrypted channel between attested peers (pccguard mitigation encrypt_transfer) under a profile that allows cross-host KV.
package pcc.rules.pcc_t_005

import data.pcc.lib
import rego.v1

kv := lib.opt("disaggregated_prefill")

allow_cross_host := lib.param("allow_cross_host_kv", false)

default applicable := false

applicable if lib.maybe_enabled(kv)

deny contains lib.finding_fixed_by("optimizations.disaggregated_prefill.crosses_hosts", {"reason": "the profile does not allow KV to leave the node (allow_cross_host_kv: false)"}, "disable:disaggregated_prefill") if {
	lib.enabled(kv)
	lib.get(kv, "crosses_hosts") == true
	allow_cross_host != true
}

deny contains lib.finding("optimizations.disaggregated_prefill.encrypted_transport", {"reason": "the channel is neither authenticated nor encrypted, so any host on the path or posing as a peer gets the KV"}) if {
	lib.enabled(kv)
	lib.get(kv, "crosses_hosts") == true
	lib.get(kv, "encrypted_transport") == false
}

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.enabled") if lib.unknown(kv, "enabled")

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.crosses_hosts") if lib.unknown(kv, "crosses_hosts")

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.encrypted_transport") if {
	lib.get(kv, "crosses_hosts") == true
	lib.unknown(kv, "encrypted_transport")
}
