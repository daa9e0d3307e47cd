# METADATA
# title: Request logging is not limited to allowlisted records
# description: >-
#   PCC has no general-purpose logging: only log records whose sender and format
#   are allowlisted leave a node. General request logging, even of metadata, is
#   an unreviewed channel from the request path to operators, and what it
#   carries changes with log levels and code changes rather than with review.
# custom:
#   id: PCC-P-002
#   requirement: P
#   optimization: request_logging
#   severity: medium
#   threats: [unreviewed data egress through logs, privileged view of user traffic]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AU-3", "NIST SP 800-53 AC-6", "CWE-532"]
#   mitigation: allowlist_logs
#   message: "Request logging is not restricted to allowlisted structured records (content: {observability.request_logging.content})"
#   remediation: Emit only allowlisted structured records (pccguard mitigation allowlist_logs), or turn the logging off.
package pcc.rules.pcc_p_002

import data.pcc.lib
import rego.v1

lg := lib.obs("request_logging")

default applicable := false

applicable if lib.maybe_enabled(lg)

deny contains lib.finding("observability.request_logging.allowlisted", {}) if {
	lib.enabled(lg)
	lib.get(lg, "allowlisted") == false
}

warn contains lib.unknown_finding("observability.request_logging.enabled") if lib.unknown(lg, "enabled")

warn contains lib.unknown_finding("observability.request_logging.allowlisted") if lib.unknown(lg, "allowlisted")
