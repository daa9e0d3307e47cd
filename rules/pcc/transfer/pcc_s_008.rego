# METADATA
# title: Migrated request's KV stays on the source instance
# description: >-
#   After a live migration the source instance still holds the request's KV
#   blocks. Unless they are released and scrubbed when the migration completes,
#   the user's data stays on a node that no longer serves the request.
# custom:
#   id: PCC-S-008
#   requirement: S
#   optimization: request_migration
#   severity: medium
#   threats: [copies left on other nodes, data leak, differential analysis]
#   references: ["NIST SP 800-53 SC-4", "NIST SP 800-53 SI-12", "CWE-226", "Apple PCC Security Guide: stateless computation"]
#   mitigation: scrub_freed_kv
#   message: "The source instance keeps a migrated request's KV after the migration (synchronized_expiry: {optimizations.request_migration.synchronized_expiry}, backend: {optimizations.request_migration.backend})"
#   remediation: Expire and scrub every copy when the request ends or its TTL passes (pccguard mitigation scrub_freed_kv), or disable the transfer.
package pcc.rules.pcc_s_008

import data.pcc.lib
import rego.v1

kv := lib.opt("request_migration")

default applicable := false

applicable if lib.maybe_enabled(kv)

deny contains lib.finding("optimizations.request_migration.synchronized_expiry", {}) if {
	lib.enabled(kv)
	lib.get(kv, "synchronized_expiry") == false
}

warn contains lib.unknown_finding("optimizations.request_migration.enabled") if lib.unknown(kv, "enabled")

warn contains lib.unknown_finding("optimizations.request_migration.synchronized_expiry") if lib.unknown(kv, "synchronized_expiry")
