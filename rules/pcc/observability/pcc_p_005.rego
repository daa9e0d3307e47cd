# METADATA
# title: Profiler or debug endpoints are reachable in production
# description: >-
#   Profiler and debug endpoints (vLLM /start_profile when a torch profiler
#   directory is set, SGLang /start_profile and the dumper routes) capture
#   execution traces, and with them the shapes and timings of user requests,
#   or dump tensors. PCC allows no such interface in production, whether or not
#   it asks for a key. Development and test environments are exempt.
# custom:
#   id: PCC-P-005
#   requirement: P
#   optimization: profiler_endpoints
#   severity: high
#   threats: [memory and tensor dumps of user data, execution traces of production traffic]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 CM-7", "NIST SP 800-53 AC-6", "CWE-489"]
#   mitigation: close_privileged_endpoints
#   message: "A profiler or debug interface is enabled: {what}"
#   remediation: Unset profiler directories and debug options in production and close the routes (pccguard mitigation close_privileged_endpoints).
package pcc.rules.pcc_p_005

import data.pcc.lib
import rego.v1

prof := lib.obs("profiler")

endpoints := object.get(input.facts, "endpoints", [])

debug_purposes := {"profiler", "debug"}

default applicable := false

production_like if not lib.fact(["deployment", "environment"]) in {"development", "test"}

applicable if production_like

deny contains lib.finding("observability.profiler.enabled", {"what": "the profiler"}) if lib.enabled(prof)

deny contains lib.finding(concat(".", ["endpoints", format_int(i, 10), "enabled"]), {"what": e.path}) if {
	some i, e in endpoints
	e.purpose in debug_purposes
	object.get(e, "enabled", true) == true
}

warn contains lib.unknown_finding("observability.profiler.enabled") if lib.unknown(prof, "enabled")

warn contains lib.unknown_finding(concat(".", ["endpoints", format_int(i, 10), "enabled"])) if {
	some i, e in endpoints
	e.purpose in debug_purposes
	object.get(e, "enabled", true) == null
}
