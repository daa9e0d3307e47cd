# METADATA
# title: Cached-token counts reveal hits on other tenants' prompts
# description: >-
#   Responses that report how many prompt tokens came from the cache
#   (usage.prompt_tokens_details.cached_tokens; vLLM
#   --enable-prompt-tokens-details, SGLang --enable-cache-report) turn a timing
#   side channel into an exact oracle. Over a prefix cache that is not isolated
#   per tenant, an attacker aims probes at a victim's prompt and reads the
#   length of the match directly from the response.
# custom:
#   id: PCC-T-010
#   requirement: T
#   optimization: cached_token_reporting
#   severity: high
#   threats: [cached-token oracle reveals other tenants' prompts, targeted prompt reconstruction]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "CWE-203", "Gu et al., ICML 2025 (Auditing Prompt Caching)", "Zheng et al., arXiv 2411.18191 (InputSnatch)"]
#   mitigation: tenant_cache_salt
#   message: "Responses report cached-token counts over a prefix cache that is not isolated per tenant (isolation: {optimizations.prefix_caching.isolation})"
#   remediation: Isolate the prefix cache per tenant with server-derived salts (pccguard mitigation tenant_cache_salt), or stop reporting cached tokens.
package pcc.rules.pcc_t_010

import data.pcc.lib
import rego.v1

ctr := lib.obs("cached_token_reporting")

pc := lib.opt("prefix_caching")

default applicable := false

applicable if {
	lib.maybe_enabled(ctr)
	lib.maybe_enabled(pc)
	lib.maybe_multi_tenant
}

deny contains lib.finding("observability.cached_token_reporting.enabled", {}) if {
	lib.enabled(ctr)
	lib.enabled(pc)
	lib.get(pc, "isolation") in {"none", "client_salt"}
}

warn contains lib.unknown_finding("observability.cached_token_reporting.enabled") if lib.unknown(ctr, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.isolation") if lib.unknown(pc, "isolation")
