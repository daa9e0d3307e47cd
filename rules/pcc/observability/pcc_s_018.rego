# METADATA
# title: Model outputs are written to logs
# description: >-
#   Logging model outputs keeps user data after the request is fulfilled, in log files
#   and in every system the logs are shipped to, where operators can read it.
#   Stateless computation forbids it; structured records without content
#   (request ids, sizes, latencies) are the most a log may hold.
# custom:
#   id: PCC-S-018
#   requirement: S
#   optimization: output_logging
#   severity: high
#   threats: [model outputs written to logs, data kept after the request, content visible to staff]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SI-12", "NIST SP 800-53 AU-3", "CWE-532", "Apple PCC Security Guide: stateless computation"]
#   mitigation: allowlist_logs
#   message: "Model outputs are logged (content: {observability.output_logging.content})"
#   remediation: Turn off content logging (vLLM without --enable-log-requests/--enable-log-outputs, SGLang --log-requests off) or let only allowlisted structured records leave the process (pccguard mitigation allowlist_logs).
package pcc.rules.pcc_s_018

import data.pcc.lib
import rego.v1

lg := lib.obs("output_logging")

default applicable := false

applicable if lib.maybe_enabled(lg)

deny contains lib.finding("observability.output_logging.content", {}) if {
	lib.enabled(lg)
	lib.get(lg, "content") in {"prompts", "outputs", "full"}
}

warn contains lib.unknown_finding("observability.output_logging.enabled") if lib.unknown(lg, "enabled")

warn contains lib.unknown_finding("observability.output_logging.content") if lib.unknown(lg, "content")
