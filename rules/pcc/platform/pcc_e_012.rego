# METADATA
# title: A route reaches the engine outside the tenant boundary
# description: >-
#   Server-derived cache salts isolate tenants only on the routes that apply
#   them. Serving engines answer the same prompt on many routes (vLLM serves
#   the SageMaker-style /invocations beside the OpenAI routes; SGLang serves
#   /generate, the OpenAI, Ollama and Anthropic routes), and a route that is not
#   bound to the authenticated tenant lets a client without a tenant reach the
#   engine, or choose the salt its KV is cached under and share another
#   client's prefix cache. Every route that carries a prompt must refuse a
#   request without an identified tenant and replace any client salt with the
#   server's. The route inventory (api.routes) is checked route by route;
#   without one, the binding of the routes is unknown.
# custom:
#   id: PCC-E-012
#   requirement: E
#   optimization: prefix_caching
#   severity: high
#   threats: [cross-tenant prefix-cache sharing through an unlisted route, client-chosen cache salts, requests without a tenant]
#   references: ["Apple PCC Security Guide: enforceable guarantees", "CVE-2025-46570 (vLLM prefix-cache timing side channel)", "CWE-284", "NIST SP 800-53 AC-3", "NIST SP 800-53 AC-4"]
#   mitigation: tenant_cache_salt
#   message: "{path} ({methods}) carries a prompt to the engine without the tenant boundary"
#   remediation: Put every request-carrying route behind the tenant boundary (pccguard mitigation tenant_cache_salt, which binds every route of the live app and refuses unminted salts in the engine core), or stop serving the route.
package pcc.rules.pcc_e_012

import data.pcc.lib
import rego.v1

pc := lib.opt("prefix_caching")

api := object.get(input.facts, "api", {})

routes := object.get(api, "routes", null)

default applicable := false

applicable if {
	lib.maybe_enabled(pc)
	lib.maybe_multi_tenant
	lib.get(pc, "isolation") != "per_tenant_instance"
}

route_fact(i, key) := concat(".", ["api", "routes", format_int(i, 10), key])

deny contains lib.finding(route_fact(i, "tenant_bound"), {"path": r.path, "methods": concat(" ", r.methods)}) if {
	some i, r in routes
	object.get(r, "carries_prompt", null) != false
	object.get(r, "tenant_bound", null) == false
}

warn contains lib.unknown_finding("api.routes") if routes == null

warn contains lib.unknown_finding(route_fact(i, "tenant_bound")) if {
	some i, r in routes
	object.get(r, "carries_prompt", null) != false
	object.get(r, "tenant_bound", null) == null
}
