# METADATA
# title: Scheduling priority comes from the client or from who the user is
# description: >-
#   Priority scheduling lets some requests overtake and preempt others. When the
#   client picks its priority (vLLM's request priority, SGLang's priority and
#   routing-key policies), an attacker orders its probes around a victim's
#   request and reads the result from completion order; when priority is derived
#   from the user's identity or from the prompt, service is aimed at who the
#   user is or what they ask. Only a server-fixed priority is neutral.
# custom:
#   id: PCC-T-006
#   requirement: T
#   optimization: priority_scheduling
#   severity: medium
#   threats: [targeting by client-chosen or user-derived priority, queue-order oracle]
#   references: ["Apple PCC Security Guide: non-targetability", "Wu et al., NDSS 2025 (PromptPeek)", "CWE-639"]
#   mitigation: server_side_priority
#   message: "Request priority is decided by the {optimizations.priority_scheduling.priority_source} side, not fixed by the server"
#   remediation: Ignore client priorities and assign priority on the server from non-identifying request classes (pccguard mitigation server_side_priority), or use first-come-first-served scheduling.
package pcc.rules.pcc_t_006

import data.pcc.lib
import rego.v1

ps := lib.opt("priority_scheduling")

default applicable := false

applicable if lib.maybe_enabled(ps)

deny contains lib.finding("optimizations.priority_scheduling.priority_source", {}) if {
	lib.enabled(ps)
	lib.get(ps, "priority_source") in {"client", "user_derived", "content_derived"}
}

warn contains lib.unknown_finding("optimizations.priority_scheduling.enabled") if lib.unknown(ps, "enabled")

warn contains lib.unknown_finding("optimizations.priority_scheduling.priority_source") if {
	lib.unknown(ps, "priority_source")
}
