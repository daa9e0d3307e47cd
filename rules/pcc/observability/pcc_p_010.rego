# METADATA
# title: Request traces are exported outside the node
# description: >-
#   Distributed tracing (OTLP) exports per-request spans to a collector outside
#   the node. Spans that capture content (prompts, outputs, tool arguments)
#   ship user data out; spans without content are still an unreviewed
#   per-request record, accepted only where the profile allows it
#   (allow_metadata_tracing).
# custom:
#   id: PCC-P-010
#   requirement: P
#   optimization: tracing_export
#   severity: medium
#   threats: [request attributes exported to an outside collector, prompts in spans]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AC-4", "NIST SP 800-53 AU-3", "CWE-532"]
#   mitigation: allowlist_logs
#   message: "Request traces are exported to {observability.tracing.endpoint}: {reason}"
#   remediation: Export only allowlisted aggregate metrics (pccguard mitigation allowlist_logs), or disable tracing.
package pcc.rules.pcc_p_010

import data.pcc.lib
import rego.v1

tr := lib.obs("tracing")

allowed := lib.param("allow_metadata_tracing", false)

default applicable := false

applicable if lib.maybe_enabled(tr)

deny contains lib.finding("observability.tracing.captures_content", {"reason": "spans capture request or response content"}) if {
	lib.enabled(tr)
	lib.get(tr, "captures_content") == true
}

deny contains lib.finding("observability.tracing.enabled", {"reason": "the profile does not allow per-request traces (allow_metadata_tracing: false)"}) if {
	lib.enabled(tr)
	lib.get(tr, "captures_content") == false
	allowed != true
}

warn contains lib.unknown_finding("observability.tracing.enabled") if lib.unknown(tr, "enabled")

warn contains lib.unknown_finding("observability.tracing.captures_content") if lib.unknown(tr, "captures_content")
