# METADATA
# title: Prefix-cache isolation is not enforced by the server
# description: >-
#   Cache isolation is a guarantee only when the server enforces it. With no
#   isolation nothing separates tenants; with client-supplied salts the client
#   decides whether and how it is isolated (it may omit the salt or copy a
#   victim's); with a server salt derived from an identity that nobody
#   authenticates, anyone can claim a victim's identity and with it the
#   victim's cache namespace.
# custom:
#   id: PCC-E-001
#   requirement: E
#   optimization: prefix_caching
#   severity: high
#   threats: [salt copied from another tenant, spoofed tenant identity, cross-tenant cache reuse]
#   references: ["NIST SP 800-53 AC-3", "NIST SP 800-53 IA-2", "CWE-639", "OWASP LLM02:2025 Sensitive Information Disclosure", "Apple PCC Security Guide: enforceable guarantees"]
#   mitigation: tenant_cache_salt
#   message: "Prefix-cache isolation is not enforced by the server: {reason}"
#   remediation: Derive the cache salt on the server from the authenticated tenant and discard client salts (pccguard mitigation tenant_cache_salt); authenticate tenants before the salt is derived.
package pcc.rules.pcc_e_001

import data.pcc.lib
import rego.v1

pc := lib.opt("prefix_caching")

isolation := lib.get(pc, "isolation")

default applicable := false

applicable if {
	lib.maybe_enabled(pc)
	lib.maybe_multi_tenant
}

deny contains lib.finding("optimizations.prefix_caching.isolation", {"reason": "no isolation is configured (isolation: none)"}) if {
	lib.enabled(pc)
	isolation == "none"
}

deny contains lib.finding("optimizations.prefix_caching.isolation", {"reason": "salts come from clients, which can omit them or copy another tenant's (isolation: client_salt)"}) if {
	lib.enabled(pc)
	isolation == "client_salt"
}

deny contains lib.finding("tenancy.identified_by", {"reason": "the server salt is derived from an identity nobody establishes (tenancy.identified_by: none)"}) if {
	lib.enabled(pc)
	isolation == "server_salt"
	lib.fact(["tenancy", "identified_by"]) == "none"
}

deny contains lib.finding("tenancy.authenticated_at", {"reason": "the server salt is derived from an identity nobody authenticates (tenancy.authenticated_at: none)"}) if {
	lib.enabled(pc)
	isolation == "server_salt"
	lib.fact(["tenancy", "authenticated_at"]) == "none"
}

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.isolation") if lib.unknown(pc, "isolation")

warn contains lib.unknown_finding("tenancy.identified_by") if {
	isolation == "server_salt"
	lib.fact(["tenancy", "identified_by"]) == null
}

warn contains lib.unknown_finding("tenancy.authenticated_at") if {
	isolation == "server_salt"
	lib.fact(["tenancy", "authenticated_at"]) == null
}
