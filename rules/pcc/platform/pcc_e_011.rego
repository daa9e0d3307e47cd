# METADATA
# title: Hybrid executor plan lets private data reach the accelerator
# description: >-
#   An enclave–accelerator hybrid executor protects private weights only if the
#   accelerator sees nothing but one-time-pad blinded inputs. A partition plan
#   that offloads a private tensor in the clear, under permutation-and-scaling
#   obfuscation (recoverable by prior matching, see ShadowNet/TransLinkGuard
#   attacks), or offloads a non-linear operation hands the accelerator what it
#   needs to recover the weights. No runtime switch fixes a bad plan: the plan
#   must change.
# custom:
#   id: PCC-E-011
#   requirement: E
#   optimization: model_protection
#   severity: critical
#   threats: [weight extraction from accelerator-visible tensors, permutation recovery by prior matching]
#   references: ["SecureInfer (enclave–GPU hybrid inference)", "Slalom (Tramer & Boneh, ICLR 2019)", "NIST SP 800-53 SC-28"]
#   mitigation: fix_configuration
#   message: "Partition plan {plan} exposes private data to the accelerator ({reason})"
#   remediation: Use the default plan (public base products offloaded on one-time-pad blinded inputs, everything private in the enclave).
package pcc.rules.pcc_e_011

import data.pcc.lib
import rego.v1

hp := object.get(input.facts, ["model", "hybrid_plan"], null)

default applicable := false

applicable if hp != null

deny contains lib.finding("model.hybrid_plan.private_unblinded_offloads", {"plan": hp.plan, "reason": "private tensors offloaded unblinded"}) if {
	hp.private_unblinded_offloads > 0
}

deny contains lib.finding("model.hybrid_plan.private_obfuscated_offloads", {"plan": hp.plan, "reason": "private tensors offloaded under recoverable obfuscation"}) if {
	hp.private_obfuscated_offloads > 0
}

deny contains lib.finding("model.hybrid_plan.insecure_obfuscation", {"plan": hp.plan, "reason": "the plan uses permutation-and-scaling obfuscation"}) if {
	hp.insecure_obfuscation == true
}

deny contains lib.finding("model.hybrid_plan.nonlinear_offloads", {"plan": hp.plan, "reason": "non-linear operations offloaded"}) if {
	hp.nonlinear_offloads > 0
}

warn contains lib.finding("model.hybrid_plan.integrity_check", {"plan": hp.plan, "reason": "no integrity check of the accelerator's answers"}) if {
	hp.integrity_check == "none"
}

warn contains lib.finding("model.hybrid_plan.prompts_protected", {"plan": hp.plan, "reason": "prompt activations reach the accelerator in the clear"}) if {
	hp.prompts_protected == false
	hp.ops_offloaded > 0
}
