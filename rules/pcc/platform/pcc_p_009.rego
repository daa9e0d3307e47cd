# METADATA
# title: Runtime LoRA or weight updates widen privileges at run time
# description: >-
#   Routes that load adapters or replace weights at run time (vLLM
#   VLLM_ALLOW_RUNTIME_LORA_UPDATING and /update_weights in RL setups, SGLang
#   /load_lora_adapter and /update_weights_from_*) let an operator or caller
#   change what processes user data while the node runs: a privilege PCC nodes
#   give up after boot.
# custom:
#   id: PCC-P-009
#   requirement: P
#   optimization: runtime_updates
#   severity: high
#   threats: [the running model differs from the attested one, runtime privilege widening]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AC-6", "NIST SP 800-53 CM-5", "CWE-494"]
#   mitigation: disable:runtime_updates
#   message: "The served model can be changed at run time: {what}"
#   remediation: Disable runtime LoRA and weight updates (VLLM_ALLOW_RUNTIME_LORA_UPDATING off, no /update_weights*, SGLang weight and adapter routes closed); ship models and adapters in the measured image.
package pcc.rules.pcc_p_009

import data.pcc.lib
import rego.v1

api := object.get(input.facts, "api", {})

endpoints := object.get(input.facts, "endpoints", [])

default applicable := false

applicable if is_object(api)

deny contains lib.finding("api.runtime_lora_updates", {"what": "LoRA adapters can be loaded at run time"}) if {
	lib.get(api, "runtime_lora_updates") == true
}

deny contains lib.finding("api.runtime_weight_updates", {"what": "weights can be replaced at run time"}) if {
	lib.get(api, "runtime_weight_updates") == true
}

deny contains lib.finding(concat(".", ["endpoints", format_int(i, 10), "enabled"]), {"what": e.path}) if {
	some i, e in endpoints
	e.purpose == "weights"
	object.get(e, "enabled", true) == true
}

warn contains lib.unknown_finding("api.runtime_lora_updates") if lib.unknown(api, "runtime_lora_updates")

warn contains lib.unknown_finding("api.runtime_weight_updates") if lib.unknown(api, "runtime_weight_updates")
