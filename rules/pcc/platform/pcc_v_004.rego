# METADATA
# title: The build is not published for verification
# description: >-
#   An attestation is only useful against a public record: every production
#   build's measurement must be published and appended to a transparency log
#   (PCC's Merkle log; Sigstore/Rekor elsewhere) so that researchers can inspect
#   it and clients can refuse builds that are not listed. A profile may also
#   require reproducible builds (require_reproducible_build), so that the
#   published measurement can be rebuilt from source.
# custom:
#   id: PCC-V-004
#   requirement: V
#   optimization: attestation
#   severity: high
#   threats: [the running build cannot be verified, split-view of builds]
#   references: ["Apple PCC Security Guide: verifiable transparency", "NIST SP 800-53 SR-4", "NIST SP 800-53 CM-14", "NIST SP 800-53 SI-7"]
#   mitigation: attested_build
#   message: "The running build cannot be verified against a public record: {reason}"
#   remediation: Publish build measurements and log every production release in a transparency log; make builds reproducible where the profile requires it.
package pcc.rules.pcc_v_004

import data.pcc.lib
import rego.v1

tee := object.get(input.facts, "tee", {})

require_reproducible := lib.param("require_reproducible_build", false)

default applicable := false

applicable if is_object(tee)

deny contains lib.finding("tee.measurement_published", {"reason": "measurements are not published"}) if {
	lib.get(tee, "measurement_published") == false
}

deny contains lib.finding("tee.transparency_log", {"reason": "builds are not logged in a transparency log"}) if {
	lib.get(tee, "transparency_log") == false
}

deny contains lib.finding("tee.reproducible_build", {"reason": "the profile requires reproducible builds"}) if {
	require_reproducible == true
	lib.get(tee, "reproducible_build") == false
}

warn contains lib.unknown_finding("tee.measurement_published") if lib.unknown(tee, "measurement_published")

warn contains lib.unknown_finding("tee.transparency_log") if lib.unknown(tee, "transparency_log")

warn contains lib.unknown_finding("tee.reproducible_build") if {
	require_reproducible == true
	lib.unknown(tee, "reproducible_build")
}
