# METADATA
# title: Evicted or flushed prefix-cache blocks keep their KV
# description: >-
#   Evicting a cached prefix (LRU, TTL expiry, a cache reset or flush) only drops
#   the index entry; the KV values stay in the freed memory until something
#   overwrites them. An expiry that does not scrub does not delete user data.
# custom:
#   id: PCC-S-005
#   requirement: S
#   optimization: prefix_caching
#   severity: medium
#   threats: [residue after expiry or reset, data leak]
#   references: ["NIST SP 800-53 SC-4", "NIST SP 800-53 MP-6", "CWE-226", "ISO/IEC 27001:2022 A.8.10"]
#   mitigation: scrub_freed_kv
#   message: "Evicted prefix-cache blocks are not zeroed (scrub_on_evict: {optimizations.prefix_caching.scrub_on_evict})"
#   remediation: Scrub blocks when the prefix cache evicts, expires or resets them (pccguard mitigation scrub_freed_kv).
package pcc.rules.pcc_s_005

import data.pcc.lib
import rego.v1

pc := lib.opt("prefix_caching")

default applicable := false

applicable if lib.maybe_enabled(pc)

deny contains lib.finding("optimizations.prefix_caching.scrub_on_evict", {}) if {
	lib.enabled(pc)
	lib.get(pc, "scrub_on_evict") == false
}

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.scrub_on_evict") if lib.unknown(pc, "scrub_on_evict")
