# METADATA
# title: Database speculation drafts from other requests' text
# description: >-
#   Database-backed speculation (vLLM suffix decoding, SGLang's NGRAM corpus,
#   REST, Lookahead) keeps a store of earlier prompts and outputs and proposes
#   continuations from it. A global store proposes one tenant's text to another
#   and its acceptance timing reveals what others wrote. A per-tenant store still
#   retains user text beyond the request and is accepted only where the profile
#   allows it (allow_tenant_spec_corpus).
# custom:
#   id: PCC-S-013
#   requirement: S
#   optimization: database_speculation
#   severity: critical
#   threats: [other tenants' text proposed as drafts, information inference through acceptance timing, datastore contents leaked]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4", "CWE-200", "Wei et al., arXiv 2411.01076 (speculative-decoding side channels)"]
#   mitigation: per_tenant_spec_corpus
#   message: "Speculation ({optimizations.database_speculation.method}) drafts from a store of earlier requests (store_scope: {store_scope}, per-tenant stores allowed: {allowed})"
#   remediation: Partition the store by tenant (pccguard mitigation per_tenant_spec_corpus) under a profile that allows it, or switch to draft-model or per-request n-gram speculation.
package pcc.rules.pcc_s_013

import data.pcc.lib
import rego.v1

ds := lib.opt("database_speculation")

allowed := lib.param("allow_tenant_spec_corpus", false)

store_scope := lib.get(ds, "store_scope")

default applicable := false

applicable if lib.maybe_enabled(ds)

# A per-tenant corpus fixes a global one only where the profile allows per-tenant corpora.
fix := "per_tenant_spec_corpus" if allowed == true else := "disable:database_speculation"

deny contains lib.finding_fixed_by("optimizations.database_speculation.store_scope", {"store_scope": store_scope, "allowed": allowed}, fix) if {
	lib.enabled(ds)
	store_scope == "global"
}

deny contains lib.finding_fixed_by("optimizations.database_speculation.store_scope", {"store_scope": store_scope, "allowed": allowed}, "disable:database_speculation") if {
	lib.enabled(ds)
	store_scope == "tenant"
	allowed != true
}

warn contains lib.unknown_finding("optimizations.database_speculation.enabled") if lib.unknown(ds, "enabled")

warn contains lib.unknown_finding("optimizations.database_speculation.store_scope") if store_scope == null
