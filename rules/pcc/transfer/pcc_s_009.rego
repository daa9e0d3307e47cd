# METADATA
# title: Prefill KV outlives the request on the prefill host
# description: >-
#   With prefill/decode disaggregation across hosts, the prefill instance keeps
#   the KV it computed until the decode side has pulled it, and often longer in
#   its own cache. Unless both copies expire with the request, user data stays
#   on a host that no longer serves it. Applies only when KV crosses hosts.
# custom:
#   id: PCC-S-009
#   requirement: S
#   optimization: disaggregated_prefill
#   severity: high
#   threats: [copies left on other nodes, data leak, differential analysis]
#   references: ["NIST SP 800-53 SC-4", "NIST SP 800-53 SI-12", "CWE-226", "Apple PCC Security Guide: stateless computation"]
#   mitigation: prefix_cache_ttl
#   message: "Prefill KV handed to decode hosts is not expired together with the request on every node (synchronized_expiry: {optimizations.disaggregated_prefill.synchronized_expiry}, backend: {optimizations.disaggregated_prefill.backend})"
#   remediation: Expire and scrub every copy when the request ends or its TTL passes (pccguard mitigation prefix_cache_ttl), or disable the transfer.
package pcc.rules.pcc_s_009

import data.pcc.lib
import rego.v1

kv := lib.opt("disaggregated_prefill")

default applicable := false

applicable if {
	lib.maybe_enabled(kv)
	lib.get(kv, "crosses_hosts") != false
}

deny contains lib.finding("optimizations.disaggregated_prefill.synchronized_expiry", {}) if {
	lib.enabled(kv)
	lib.get(kv, "synchronized_expiry") == false
}

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.enabled") if lib.unknown(kv, "enabled")

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.synchronized_expiry") if lib.unknown(kv, "synchronized_expiry")
