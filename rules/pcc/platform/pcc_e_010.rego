# METADATA
# title: Private model runs on an untrusted accelerator
# description: >-
#   Private weights or adapters on an accelerator outside the trust boundary
#   (no GPU confidential computing, or an unattested one) are exposed to
#   whoever controls the host: the accelerator's memory holds the weights in
#   the clear, and its inputs and outputs allow extraction. Model confidentiality
#   is then not enforced by anything. Running the private parts in an enclave
#   and giving the accelerator blinded data only (hybrid executor) restores it.
# custom:
#   id: PCC-E-010
#   requirement: E
#   optimization: model_protection
#   severity: high
#   threats: [weight extraction from what the accelerator sees, adapter theft]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-28", "NIST SP 800-53 SC-39", "CWE-311"]
#   mitigation: hybrid_executor
#   message: "Private model parts run on an untrusted accelerator: {what}"
#   remediation: Run on an attested confidential-computing GPU, or enable the pccguard hybrid executor so private layers stay in the enclave.
package pcc.rules.pcc_e_010

import data.pcc.lib
import rego.v1

model := object.get(input.facts, "model", {})

weights := lib.get(model, "weights")

adapters := lib.get(model, "private_adapters")

trusted := lib.get(model, "accelerator_trusted")

default applicable := false

applicable if weights != "public"

applicable if adapters == true

deny contains lib.finding("model.accelerator_trusted", {"what": "private weights"}) if {
	weights == "private"
	trusted == false
}

deny contains lib.finding("model.private_adapters", {"what": "private adapters"}) if {
	adapters == true
	trusted == false
}

warn contains lib.unknown_finding("model.weights") if weights == null

warn contains lib.unknown_finding("model.accelerator_trusted") if trusted == null
