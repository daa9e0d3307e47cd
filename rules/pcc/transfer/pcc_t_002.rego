# METADATA
# title: Duplicated KV copies do not expire together
# description: >-
#   Copies of a user's KV on several nodes that do not expire together leave
#   stale copies behind. A limited compromise of one node then harvests specific
#   users' KV long after their requests ended, and differences between copies
#   reveal which users were placed where.
# custom:
#   id: PCC-T-002
#   requirement: T
#   optimization: duplication
#   severity: medium
#   threats: [copies left on other nodes, data leak, differential analysis]
#   references: ["NIST SP 800-53 SC-4", "NIST SP 800-53 SI-12", "CWE-226", "Apple PCC Security Guide: non-targetability"]
#   mitigation: prefix_cache_ttl
#   message: "Duplicated KV is not expired together with the request on every node (synchronized_expiry: {optimizations.duplication.synchronized_expiry}, backend: {optimizations.duplication.backend})"
#   remediation: Expire and scrub every copy when the request ends or its TTL passes (pccguard mitigation prefix_cache_ttl), or disable the transfer.
package pcc.rules.pcc_t_002

import data.pcc.lib
import rego.v1

kv := lib.opt("duplication")

default applicable := false

applicable if lib.maybe_enabled(kv)

deny contains lib.finding("optimizations.duplication.synchronized_expiry", {}) if {
	lib.enabled(kv)
	lib.get(kv, "synchronized_expiry") == false
}

warn contains lib.unknown_finding("optimizations.duplication.enabled") if lib.unknown(kv, "enabled")

warn contains lib.unknown_finding("optimizations.duplication.synchronized_expiry") if lib.unknown(kv, "synchronized_expiry")
