# METADATA
# title: A component of the serving stack is closed source
# description: >-
#   Verifiable transparency means researchers can inspect what runs in
#   production. A closed-source component in the request path (a proprietary
#   runtime, precompiled kernels, an opaque compiled engine plan, a vendor
#   router) cannot be inspected, so no claim about what it does with user data
#   can be verified.
# custom:
#   id: PCC-V-001
#   requirement: V
#   optimization: closed_source
#   severity: medium
#   threats: [behaviour that cannot be inspected or verified]
#   references: ["Apple PCC Security Guide: verifiable transparency", "NIST SP 800-53 SR-4", "NIST SP 800-53 SA-8", "OWASP LLM03:2025 Supply Chain"]
#   mitigation: disable:closed_source
#   message: "Closed-source components in the serving stack: {components}"
#   remediation: Replace closed components with open ones, or publish their source (or at least their binaries and measurements) for inspection.
package pcc.rules.pcc_v_001

import data.pcc.lib
import rego.v1

cs := lib.opt("closed_source")

default applicable := false

applicable if is_object(cs)

components := object.get(cs, "components", []) if {
	count(object.get(cs, "components", [])) > 0
} else := "not listed"

deny contains lib.finding("optimizations.closed_source.enabled", {"components": components}) if lib.enabled(cs)

warn contains lib.unknown_finding("optimizations.closed_source.enabled") if lib.unknown(cs, "enabled")
