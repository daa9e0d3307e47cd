# METADATA
# title: Crash and debug dumps keep request data
# description: >-
#   Crash dumps and debug dumps write recent requests (SGLang's crash dump keeps
#   the last five minutes of requests), tensors or state to disk. The user data
#   in them outlives the request and survives restarts.
# custom:
#   id: PCC-S-021
#   requirement: S
#   optimization: crash_dumps
#   severity: high
#   threats: [request content written to disk, dumps read by operators]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SI-12", "CWE-532", "Apple PCC Security Guide: stateless computation"]
#   mitigation: disable:crash_dumps
#   message: "Crash or debug dumps that hold request data are enabled (path: {observability.dumps.path})"
#   remediation: Disable crash and debug dumps (SGLang --crash-dump-folder, --debug-tensor-dump-output-folder; vLLM VLLM_DEBUG_DUMP_PATH) or redact them to allowlisted fields.
package pcc.rules.pcc_s_021

import data.pcc.lib
import rego.v1

dumps := lib.obs("dumps")

default applicable := false

applicable if is_object(dumps)

deny contains lib.finding("observability.dumps.enabled", {}) if lib.enabled(dumps)

warn contains lib.unknown_finding("observability.dumps.enabled") if lib.unknown(dumps, "enabled")
