# METADATA
# title: The running model can differ from the attested one
# description: >-
#   Verifiable transparency requires that what runs in production is what was
#   measured and published. Loading adapters or replacing weights at run time
#   makes the model that processes requests differ from the one in the
#   attested image, invisibly to anyone verifying it.
# custom:
#   id: PCC-V-002
#   requirement: V
#   optimization: runtime_updates
#   severity: high
#   threats: [the running model differs from the attested one, runtime privilege widening]
#   references: ["Apple PCC Security Guide: verifiable transparency", "NIST SP 800-53 SI-7", "NIST SP 800-53 CM-14", "CWE-494", "OWASP LLM03:2025 Supply Chain"]
#   mitigation: disable:runtime_updates
#   message: "The served model can be changed at run time: {what}"
#   remediation: Disable runtime LoRA and weight updates (VLLM_ALLOW_RUNTIME_LORA_UPDATING off, no /update_weights*, SGLang weight and adapter routes closed); ship models and adapters in the measured image.
package pcc.rules.pcc_v_002

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
