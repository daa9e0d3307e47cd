# METADATA
# title: Prefix cache keeps earlier requests' KV
# description: >-
#   Automatic prefix caching keeps the KV of finished requests so later requests
#   can reuse it. Under strict statelessness no user data may outlive its request;
#   a multi-tenant baseline accepts it only when cached prefixes expire (TTL).
# custom:
#   id: PCC-S-003
#   requirement: S
#   optimization: prefix_caching
#   severity: high
#   threats: [data leak, information inference through timing]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4"]
#   mitigation: prefix_cache_ttl
#   message: "Prefix cache retains KV after requests finish (ttl_seconds: {ttl}, profile maximum: {max_ttl})"
#   remediation: Disable prefix caching, or enforce a TTL with the pccguard plugin under a profile that allows it.
package pcc.rules.pcc_s_003

import data.pcc.lib
import rego.v1

pc := lib.opt("prefix_caching")

max_ttl := lib.param("max_prefix_cache_ttl_seconds", 0)

default applicable := false

applicable if lib.maybe_enabled(pc)

deny contains lib.finding("optimizations.prefix_caching.enabled", {"ttl": ttl, "max_ttl": max_ttl}) if {
	lib.enabled(pc)
	ttl := lib.get(pc, "ttl_seconds")
	not ttl_within_limit(ttl)
}

ttl_within_limit(ttl) if {
	ttl != null
	max_ttl > 0
	ttl <= max_ttl
}

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")
