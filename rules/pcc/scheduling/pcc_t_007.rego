# METADATA
# title: Scheduling depends on predictions made from the prompt
# description: >-
#   Schedulers that predict a request's output length (or cost) from its prompt
#   and order or place requests by the prediction make what the user asks
#   decide where and when it runs. Placement then correlates with content, and
#   an attacker who can influence the predictor can steer chosen prompts.
# custom:
#   id: PCC-T-007
#   requirement: T
#   optimization: request_level_prediction
#   severity: medium
#   threats: [content-derived steering, scheduling order reveals prompt properties]
#   references: ["Apple PCC Security Guide: non-targetability", "NIST SP 800-53 SC-31", "CWE-203"]
#   mitigation: disable:request_level_prediction
#   message: "Requests are scheduled by predictions made from prompt content (uses_prompt_content: {optimizations.request_level_prediction.uses_prompt_content})"
#   remediation: Schedule without content-derived predictions (FCFS, or predictions from non-content fields such as max_tokens).
package pcc.rules.pcc_t_007

import data.pcc.lib
import rego.v1

rp := lib.opt("request_level_prediction")

default applicable := false

applicable if lib.maybe_enabled(rp)

deny contains lib.finding("optimizations.request_level_prediction.uses_prompt_content", {}) if {
	lib.enabled(rp)
	lib.get(rp, "uses_prompt_content") == true
}

warn contains lib.unknown_finding("optimizations.request_level_prediction.enabled") if lib.unknown(rp, "enabled")

warn contains lib.unknown_finding("optimizations.request_level_prediction.uses_prompt_content") if {
	lib.unknown(rp, "uses_prompt_content")
}
