# METADATA
# title: Usage statistics are sent to a third party
# description: >-
#   Several engines report usage statistics to their developers by default
#   (vLLM unless VLLM_NO_USAGE_STATS or DO_NOT_TRACK is set; TGI unless
#   --usage-stats off). The reports describe the deployment, hardware and
#   load, leave the node on a channel outside any allowlist, and change with
#   the engine version.
# custom:
#   id: PCC-P-011
#   requirement: P
#   optimization: tracing_export
#   severity: low
#   threats: [deployment and traffic attributes exported to a third party]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AC-4", "NIST SP 800-53 CM-7"]
#   mitigation: allowlist_logs
#   message: "The engine sends usage statistics to its developers (usage_stats: {observability.usage_stats.enabled})"
#   remediation: Turn usage reporting off (VLLM_NO_USAGE_STATS=1 or DO_NOT_TRACK=1; TGI --usage-stats off).
package pcc.rules.pcc_p_011

import data.pcc.lib
import rego.v1

usage := lib.obs("usage_stats")

default applicable := false

applicable if is_object(usage)

deny contains lib.finding("observability.usage_stats.enabled", {}) if lib.enabled(usage)

warn contains lib.unknown_finding("observability.usage_stats.enabled") if lib.unknown(usage, "enabled")
