# METADATA
# title: Pulled KV outlives the request
# description: >-
#   KV pulled from a peer is a second copy of user data on another node. If it
#   is not expired together with the original (and with the request), it stays
#   on the puller after the user's request is done.
# custom:
#   id: PCC-S-007
#   requirement: S
#   optimization: pulling
#   severity: high
#   threats: [copies left on other nodes, data leak, differential analysis]
#   references: ["NIST SP 800-53 SC-4", "NIST SP 800-53 SI-12", "CWE-226", "Apple PCC Security Guide: stateless computation"]
#   mitigation: prefix_cache_ttl
#   message: "Pulled KV is not expired together with the request on every node (synchronized_expiry: {optimizations.pulling.synchronized_expiry}, backend: {optimizations.pulling.backend})"
#   remediation: Expire and scrub every copy when the request ends or its TTL passes (pccguard mitigation prefix_cache_ttl), or disable the transfer.
package pcc.rules.pcc_s_007

import data.pcc.lib
import rego.v1

kv := lib.opt("pulling")

default applicable := false

applicable if lib.maybe_enabled(kv)

deny contains lib.finding("optimizations.pulling.synchronized_expiry", {}) if {
	lib.enabled(kv)
	lib.get(kv, "synchronized_expiry") == false
}

warn contains lib.unknown_finding("optimizations.pulling.enabled") if lib.unknown(kv, "enabled")

warn contains lib.unknown_finding("optimizations.pulling.synchronized_expiry") if lib.unknown(kv, "synchronized_expiry")
