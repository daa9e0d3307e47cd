# METADATA
# title: Cached-token counts report state kept from earlier requests
# description: >-
#   A cached-token count tells the caller how much of its prompt matched state
#   left by earlier requests. Under strict statelessness that state should not
#   exist, and reporting it discloses other requests' prompts (or, with per-user
#   sharing inside a tenant, colleagues' prompts). A profile that allows
#   isolated prefix caches accepts the report when the cache is isolated per
#   tenant by the server.
# custom:
#   id: PCC-S-020
#   requirement: S
#   optimization: cached_token_reporting
#   severity: medium
#   threats: [cached-token oracle, disclosure of earlier requests' prompts]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4", "CWE-203", "Gu et al., ICML 2025 (Auditing Prompt Caching)"]
#   mitigation: disable:cached_token_reporting
#   message: "Responses report cached-token counts from cross-request state (isolation: {optimizations.prefix_caching.isolation}, isolated caches allowed: {allowed})"
#   remediation: Stop reporting cached tokens (vLLM without --enable-prompt-tokens-details, SGLang without --enable-cache-report), or isolate the cache per tenant with server-derived salts (pccguard mitigation tenant_cache_salt) under a profile that allows it.
package pcc.rules.pcc_s_020

import data.pcc.lib
import rego.v1

ctr := lib.obs("cached_token_reporting")

pc := lib.opt("prefix_caching")

allowed := lib.param("allow_isolated_prefix_cache", false)

default applicable := false

applicable if {
	lib.maybe_enabled(ctr)
	lib.maybe_enabled(pc)
}

accepted if {
	allowed == true
	lib.get(pc, "isolation") in {"server_salt", "per_tenant_instance"}
}

# Where the profile allows isolated caches, server-derived tenant salts are the fix; otherwise only
# turning the report off is.
deny contains lib.finding_fixed_by("observability.cached_token_reporting.enabled", {"allowed": allowed}, "tenant_cache_salt") if {
	lib.enabled(ctr)
	lib.enabled(pc)
	allowed == true
	not accepted
}

deny contains lib.finding("observability.cached_token_reporting.enabled", {"allowed": allowed}) if {
	lib.enabled(ctr)
	lib.enabled(pc)
	allowed != true
}

warn contains lib.unknown_finding("observability.cached_token_reporting.enabled") if lib.unknown(ctr, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")
