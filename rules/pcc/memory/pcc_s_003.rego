# METADATA
# title: Prefix cache keeps earlier requests' KV
# description: >-
#   Automatic prefix caching keeps the KV of finished requests so later requests
#   can reuse it. Under strict statelessness no user data may outlive its request.
#   A profile that allows isolated prefix caches (allow_isolated_prefix_cache)
#   accepts it only when cached prefixes expire within
#   max_prefix_cache_ttl_seconds; a TTL that is not set, not known or 0 counts
#   as no expiry. Cross-tenant sharing is checked by PCC-S-004.
# custom:
#   id: PCC-S-003
#   requirement: S
#   optimization: prefix_caching
#   severity: high
#   threats: [data leak, information inference through timing]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4", "NIST SP 800-53 SI-12", "Apple PCC Security Guide: stateless computation"]
#   mitigation: prefix_cache_ttl
#   message: "Prefix cache retains KV after requests finish (ttl_seconds: {ttl}, profile maximum: {max_ttl}, isolated prefix caches allowed: {allowed})"
#   remediation: Disable prefix caching, or enforce a TTL with the pccguard plugin under a profile that allows isolated prefix caches.
package pcc.rules.pcc_s_003

import data.pcc.lib
import rego.v1

pc := lib.opt("prefix_caching")

max_ttl := lib.param("max_prefix_cache_ttl_seconds", 0)

allowed := lib.param("allow_isolated_prefix_cache", false)

ttl := lib.get(pc, "ttl_seconds")

default applicable := false

applicable if lib.maybe_enabled(pc)

# The fact to blame: the TTL when one is set and the profile allows a TTL,
# otherwise the switch that turned prefix caching on.
culprit := "optimizations.prefix_caching.ttl_seconds" if {
	ttl != null
	allowed == true
	max_ttl > 0
} else := "optimizations.prefix_caching.enabled"

ttl_shown := ttl if {
	ttl != null
} else := "not set"

# Under a profile that allows no prefix cache at all, only turning it off satisfies the rule.
fix := "prefix_cache_ttl" if allowed == true else := "disable:prefix_caching"

deny contains lib.finding_fixed_by(culprit, {"ttl": ttl_shown, "max_ttl": max_ttl, "allowed": allowed}, fix) if {
	lib.enabled(pc)
	not ttl_within_limit
}

ttl_within_limit if {
	allowed == true
	ttl != null
	ttl > 0
	max_ttl > 0
	ttl <= max_ttl
}

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")
