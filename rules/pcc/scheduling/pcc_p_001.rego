# METADATA
# title: Production traffic is profiled
# description: >-
#   Profiling production traffic (torch profiler, Nsight, continuous profilers,
#   per-request execution traces) gives operators a privileged view of user
#   requests: timings and shapes that reveal content, and with some profilers
#   the tensors themselves. PCC excludes execution traces from production for
#   exactly this reason. Development and test environments are exempt.
# custom:
#   id: PCC-P-001
#   requirement: P
#   optimization: global_profiling
#   severity: high
#   threats: [privileged view of user traffic, side channels through execution traces]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AC-6", "NIST SP 800-53 CM-7", "CWE-215"]
#   mitigation: disable:global_profiling
#   message: "Production traffic is profiled (captures_content: {optimizations.global_profiling.captures_content})"
#   remediation: Disable profiling of production traffic; profile with synthetic load in a separate environment.
package pcc.rules.pcc_p_001

import data.pcc.lib
import rego.v1

gp := lib.opt("global_profiling")

default applicable := false

applicable if not lib.fact(["deployment", "environment"]) in {"development", "test"}

deny contains lib.finding("optimizations.global_profiling.enabled", {}) if lib.enabled(gp)

warn contains lib.unknown_finding("optimizations.global_profiling.enabled") if lib.unknown(gp, "enabled")
