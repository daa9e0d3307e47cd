# METADATA
# title: The running build is not attested by hardware
# description: >-
#   Verifiable transparency needs proof that a node runs the published build: a
#   hardware-rooted attestation (Intel TDX, AMD SEV-SNP, NVIDIA confidential
#   computing) that clients or a verifier check before sending data. Without it
#   nobody can tell what code processes a request; a software-only
#   "attestation" proves nothing the host could not forge.
# custom:
#   id: PCC-V-003
#   requirement: V
#   optimization: attestation
#   severity: high
#   threats: [the running build cannot be verified, substituted software]
#   references: ["Apple PCC Security Guide: verifiable transparency", "NIST SP 800-53 SI-7", "NIST SP 800-53 SR-11"]
#   mitigation: attested_build
#   message: "The running build is not attested by hardware: {reason}"
#   remediation: Run in a confidential VM with a hardware root of trust (TDX or SEV-SNP, plus GPU confidential computing) and verify its attestation before traffic reaches it.
package pcc.rules.pcc_v_003

import data.pcc.lib
import rego.v1

tee := object.get(input.facts, "tee", {})

default applicable := false

applicable if is_object(tee)

deny contains lib.finding("tee.attested", {"reason": "no attestation (attested: false)"}) if {
	lib.get(tee, "attested") == false
}

deny contains lib.finding("tee.kind", {"reason": "no hardware root of trust (kind: none or software)"}) if {
	lib.get(tee, "attested") == true
	lib.get(tee, "kind") in {"none", "software"}
}

warn contains lib.unknown_finding("tee.attested") if lib.unknown(tee, "attested")

warn contains lib.unknown_finding("tee.kind") if lib.unknown(tee, "kind")
