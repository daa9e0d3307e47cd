# METADATA
# title: Admin, dev or weight endpoints give runtime access
# description: >-
#   Admin and dev routes let whoever calls them change the running engine:
#   vLLM's VLLM_SERVER_DEV_MODE adds /collective_rpc (any worker method),
#   /reset_prefix_cache and /sleep, which vLLM's security guide warns are not
#   covered by --api-key; SGLang's 42 admin routes, /configure_logging among
#   them, are open unless an API or admin key is set.
#   Unauthenticated routes are always denied, dev routes always (they execute
#   arbitrary methods), and authenticated admin routes only where the profile
#   allows them (allow_authenticated_admin_endpoints): PCC has no interface
#   that lets even its own staff bypass the guarantees. The facts' endpoint
#   inventory is checked route by route; without one, the engine's admin key
#   setting (api.admin_auth_required) decides.
# custom:
#   id: PCC-P-006
#   requirement: P
#   optimization: admin_endpoints
#   severity: critical
#   threats: [runtime control that bypasses the guarantees, logging switched on remotely, arbitrary worker calls]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AC-6", "NIST SP 800-53 AC-3", "CWE-306", "CWE-489"]
#   mitigation: close_privileged_endpoints
#   message: "Privileged runtime access through {path}: {reason}"
#   remediation: Turn dev mode off, close admin and weight routes or require the admin key for them (pccguard mitigation close_privileged_endpoints).
package pcc.rules.pcc_p_006

import data.pcc.lib
import rego.v1

endpoints := object.get(input.facts, "endpoints", [])

api := object.get(input.facts, "api", {})

allow_authenticated := lib.param("allow_authenticated_admin_endpoints", false)

admin_purposes := {"admin", "weights"}

default applicable := false

applicable if is_object(api)

endpoint_fact(i, key) := concat(".", ["endpoints", format_int(i, 10), key])

# Without an endpoint inventory, fall back on whether the engine's admin key is required.
no_inventory if count(endpoints) == 0

deny contains lib.finding(endpoint_fact(i, "enabled"), {"path": e.path, "reason": "dev endpoints run arbitrary engine methods"}) if {
	some i, e in endpoints
	e.purpose == "dev"
	object.get(e, "enabled", true) == true
}

deny contains lib.finding(endpoint_fact(i, "authenticated"), {"path": e.path, "reason": "no authentication"}) if {
	some i, e in endpoints
	e.purpose in admin_purposes
	object.get(e, "enabled", true) == true
	object.get(e, "authenticated", null) == false
}

deny contains lib.finding_fixed_by(endpoint_fact(i, "enabled"), {"path": e.path, "reason": "the profile allows no admin endpoints, authenticated or not"}, "disable:admin_endpoints") if {
	some i, e in endpoints
	e.purpose in admin_purposes
	object.get(e, "enabled", true) == true
	object.get(e, "authenticated", null) == true
	allow_authenticated != true
}

deny contains lib.finding("api.admin_auth_required", {"path": "the engine's admin routes", "reason": "no admin key protects them"}) if {
	no_inventory
	lib.get(api, "admin_auth_required") == false
}

warn contains lib.unknown_finding(endpoint_fact(i, "authenticated")) if {
	some i, e in endpoints
	e.purpose in admin_purposes
	object.get(e, "enabled", true) == true
	object.get(e, "authenticated", null) == null
}

warn contains lib.unknown_finding(endpoint_fact(i, "enabled")) if {
	some i, e in endpoints
	e.purpose in {"admin", "dev", "weights"}
	object.get(e, "enabled", true) == null
}

warn contains lib.unknown_finding("api.admin_auth_required") if {
	no_inventory
	lib.get(api, "admin_auth_required") == null
}
