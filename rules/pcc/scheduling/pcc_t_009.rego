# METADATA
# title: Queue order or routing depends on what other requests cached
# description: >-
#   Cache-aware scheduling (SGLang lpm and dfs-weight) and prefix-aware routing
#   order or place requests by how much of their prompt is already cached. With a
#   cache-wide scope, an attacker sends candidate continuations of a victim's
#   prompt and reads which guess was cached from the order of completions
#   (PromptPeek), even when timing is noisy. A tenant-scoped policy is accepted
#   only where the profile allows isolated prefix caches.
# custom:
#   id: PCC-T-009
#   requirement: T
#   optimization: cache_aware_scheduling
#   severity: high
#   threats: [queue-order oracle, routing by prompt content]
#   references: ["Wu et al., NDSS 2025 (PromptPeek)", "OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-31", "CWE-203"]
#   mitigation: cache_agnostic_scheduling
#   message: "Scheduling policy {optimizations.cache_aware_scheduling.policy} orders or routes requests by cached prefixes (scope: {scope}, isolated caches allowed: {allowed})"
#   remediation: Use a cache-agnostic policy such as FCFS (pccguard mitigation cache_agnostic_scheduling), or scope cache matching by server-derived tenant salts under a profile that allows it.
package pcc.rules.pcc_t_009

import data.pcc.lib
import rego.v1

cas := lib.opt("cache_aware_scheduling")

allowed := lib.param("allow_isolated_prefix_cache", false)

scope := lib.get(cas, "scope")

default applicable := false

applicable if lib.maybe_enabled(cas)

deny contains lib.finding("optimizations.cache_aware_scheduling.scope", {"scope": scope, "allowed": allowed}) if {
	lib.enabled(cas)
	scope == "global"
}

deny contains lib.finding("optimizations.cache_aware_scheduling.scope", {"scope": scope, "allowed": allowed}) if {
	lib.enabled(cas)
	scope == "tenant"
	allowed != true
}

warn contains lib.unknown_finding("optimizations.cache_aware_scheduling.enabled") if lib.unknown(cas, "enabled")

warn contains lib.unknown_finding("optimizations.cache_aware_scheduling.scope") if scope == null
