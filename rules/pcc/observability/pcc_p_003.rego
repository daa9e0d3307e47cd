# METADATA
# title: Output logging is not limited to allowlisted records
# description: >-
#   PCC has no general-purpose logging: only log records whose sender and format
#   are allowlisted leave a node. General output logging, even of metadata, is
#   an unreviewed channel from the request path to operators, and what it
#   carries changes with log levels and code changes rather than with review.
# custom:
#   id: PCC-P-003
#   requirement: P
#   optimization: output_logging
#   severity: medium
#   threats: [unreviewed data egress through logs, privileged view of user traffic]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AU-3", "NIST SP 800-53 AC-6", "CWE-532"]
#   mitigation: allowlist_logs
#   message: "Output logging is not restricted to allowlisted structured records (content: {observability.output_logging.content})"
#   remediation: Emit only allowlisted structured records (pccguard mitigation allowlist_logs), or turn the logging off.
package pcc.rules.pcc_p_003

import data.pcc.lib
import rego.v1

lg := lib.obs("output_logging")

default applicable := false

applicable if lib.maybe_enabled(lg)

deny contains lib.finding("observability.output_logging.allowlisted", {}) if {
	lib.enabled(lg)
	lib.get(lg, "allowlisted") == false
}

warn contains lib.unknown_finding("observability.output_logging.enabled") if lib.unknown(lg, "enabled")

warn contains lib.unknown_finding("observability.output_logging.allowlisted") if lib.unknown(lg, "allowlisted")
