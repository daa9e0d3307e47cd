# METADATA
# title: Prefix cache is shared across tenants
# description: >-
#   Without per-tenant isolation, a prefix cached for one tenant is reused for
#   any other tenant whose prompt starts the same way. The reuse is observable
#   (time to first token, cached-token counts, queue order), so a co-tenant can
#   confirm guesses of another tenant's prompt token by token. A client-supplied
#   salt is not isolation: a client that sends no salt shares the unsalted
#   namespace with every other such client, and a client can copy another's salt.
# custom:
#   id: PCC-S-004
#   requirement: S
#   optimization: prefix_caching
#   severity: critical
#   threats: [cross-tenant prompt reconstruction through timing, cached-token oracle, data leak]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4", "CWE-208", "CVE-2025-46570 (vLLM prefix-cache timing side channel)", "Zheng et al., arXiv 2411.18191 (InputSnatch)", "Gu et al., ICML 2025 (Auditing Prompt Caching)", "Song et al., arXiv 2409.20002 (The Early Bird Catches the Leak)"]
#   mitigation: tenant_cache_salt
#   message: "Prefix cache is shared across tenants (isolation: {isolation})"
#   remediation: Have the server derive the cache salt from the authenticated tenant and override any client salt (pccguard mitigation tenant_cache_salt), run one instance per tenant, or disable prefix caching.
package pcc.rules.pcc_s_004

import data.pcc.lib
import rego.v1

pc := lib.opt("prefix_caching")

shared_modes := {"none", "client_salt"}

default applicable := false

applicable if {
	lib.maybe_enabled(pc)
	lib.maybe_multi_tenant
}

deny contains lib.finding("optimizations.prefix_caching.isolation", {"isolation": isolation}) if {
	lib.enabled(pc)
	isolation := lib.get(pc, "isolation")
	isolation in shared_modes
}

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.isolation") if lib.unknown(pc, "isolation")
