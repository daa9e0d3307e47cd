# METADATA
# title: Crash and debug dumps give operators a view of user data
# description: >-
#   A dump is a privileged, unstructured view of the process: whoever collects
#   it reads the requests, tensors and state it holds. PCC redacts crash reports
#   and disables sysdiagnose-style collection because a dump bypasses the log
#   and metric allowlists.
# custom:
#   id: PCC-P-007
#   requirement: P
#   optimization: crash_dumps
#   severity: high
#   threats: [request content written to disk, dumps read by operators]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AC-6", "CWE-215"]
#   mitigation: disable:crash_dumps
#   message: "Crash or debug dumps that hold request data are enabled (path: {observability.dumps.path})"
#   remediation: Disable crash and debug dumps (SGLang --crash-dump-folder, --debug-tensor-dump-output-folder; vLLM VLLM_DEBUG_DUMP_PATH) or redact them to allowlisted fields.
package pcc.rules.pcc_p_007

import data.pcc.lib
import rego.v1

dumps := lib.obs("dumps")

default applicable := false

applicable if is_object(dumps)

deny contains lib.finding("observability.dumps.enabled", {}) if lib.enabled(dumps)

warn contains lib.unknown_finding("observability.dumps.enabled") if lib.unknown(dumps, "enabled")
