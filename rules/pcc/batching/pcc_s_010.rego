# METADATA
# title: Chunked prefill exposes partial prompts through a shared prefix cache
# description: >-
#   Engines that insert each prefill chunk into the prefix cache as it completes
#   (SGLang's radix cache, vLLM's full-block caching) make the first part of a
#   prompt reusable by other requests while its owner is still running. With a
#   cache shared across tenants, a co-tenant can probe a long prompt while it is
#   being processed, before any TTL or end-of-request cleanup could help.
# custom:
#   id: PCC-S-010
#   requirement: S
#   optimization: chunked_prefill
#   severity: medium
#   threats: [partial prompts visible to other requests while the owner runs]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4", "CWE-208", "Wu et al., NDSS 2025 (PromptPeek)"]
#   mitigation: tenant_cache_salt
#   message: "Prefill chunks enter a prefix cache shared across tenants (isolation: {optimizations.prefix_caching.isolation})"
#   remediation: Isolate the prefix cache per tenant with server-derived salts (pccguard mitigation tenant_cache_salt), or keep chunks out of the cache until the request ends.
package pcc.rules.pcc_s_010

import data.pcc.lib
import rego.v1

cp := lib.opt("chunked_prefill")

pc := lib.opt("prefix_caching")

default applicable := false

applicable if {
	lib.maybe_enabled(cp)
	lib.maybe_enabled(pc)
	lib.maybe_multi_tenant
}

deny contains lib.finding("optimizations.chunked_prefill.chunks_enter_prefix_cache", {}) if {
	lib.enabled(cp)
	lib.enabled(pc)
	lib.get(cp, "chunks_enter_prefix_cache") == true
	lib.get(pc, "isolation") in {"none", "client_salt"}
}

warn contains lib.unknown_finding("optimizations.chunked_prefill.enabled") if lib.unknown(cp, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")

warn contains lib.unknown_finding("optimizations.chunked_prefill.chunks_enter_prefix_cache") if {
	lib.unknown(cp, "chunks_enter_prefix_cache")
}

warn contains lib.unknown_finding("optimizations.prefix_caching.isolation") if {
	lib.get(cp, "chunks_enter_prefix_cache") != false
	lib.unknown(pc, "isolation")
}
