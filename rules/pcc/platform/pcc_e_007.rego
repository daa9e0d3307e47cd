# METADATA
# title: Runtime endpoints can switch enforced guarantees off
# description: >-
#   A guarantee enforced in code holds only if nobody can reconfigure the code
#   at run time. Dev endpoints such as vLLM's /collective_rpc call any worker
#   method (undoing scrubbing, salting or any other hook), and unauthenticated
#   admin routes such as SGLang's /configure_logging turn on full request
#   logging and pickle dumps for anyone who asks. The facts' endpoint inventory
#   is checked route by route; without one, the engine's admin key setting
#   (api.admin_auth_required) decides.
# custom:
#   id: PCC-E-007
#   requirement: E
#   optimization: admin_endpoints
#   severity: high
#   threats: [runtime control that bypasses the guarantees, enforcement hooks undone remotely]
#   references: ["Apple PCC Security Guide: enforceable guarantees", "NIST SP 800-53 AC-3", "NIST SP 800-53 CM-5", "CWE-306"]
#   mitigation: close_privileged_endpoints
#   message: "{path} can change the running engine: {reason}"
#   remediation: Turn dev mode off and require the admin key on every admin and weight route (pccguard mitigation close_privileged_endpoints).
package pcc.rules.pcc_e_007

import data.pcc.lib
import rego.v1

endpoints := object.get(input.facts, "endpoints", [])

api := object.get(input.facts, "api", {})

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

deny contains lib.finding(endpoint_fact(i, "authenticated"), {"path": e.path, "reason": "it needs no authentication"}) if {
	some i, e in endpoints
	e.purpose in {"admin", "weights"}
	object.get(e, "enabled", true) == true
	object.get(e, "authenticated", null) == false
}

deny contains lib.finding("api.admin_auth_required", {"path": "An admin route", "reason": "no admin key protects the admin routes"}) if {
	no_inventory
	lib.get(api, "admin_auth_required") == false
}

warn contains lib.unknown_finding(endpoint_fact(i, "authenticated")) if {
	some i, e in endpoints
	e.purpose in {"admin", "weights"}
	object.get(e, "enabled", true) == true
	object.get(e, "authenticated", null) == null
}

warn contains lib.unknown_finding("api.admin_auth_required") if {
	no_inventory
	lib.get(api, "admin_auth_required") == null
}
