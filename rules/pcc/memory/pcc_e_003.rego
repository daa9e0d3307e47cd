# METADATA
# title: KV is offloaded outside the trust boundary without authenticated encryption
# description: >-
#   A local disk or a remote KV store (LMCache, Mooncake, HiCache L3, 3FS) is a
#   component outside the serving process. Unless offloaded KV is protected by
#   authenticated encryption, confidentiality and integrity of user data rest on
#   that component: whoever controls the store can read the KV or inject forged
#   KV that the engine will attend to.
# custom:
#   id: PCC-E-003
#   requirement: E
#   optimization: disk_offloading
#   severity: high
#   threats: [data leak from storage, KV injection, trust in an outside store]
#   references: ["NIST SP 800-53 SC-28", "NIST SP 800-53 SC-13", "CWE-311", "CWE-345", "Luo et al., arXiv 2508.09442 (Shadow in the Cache)"]
#   mitigation: encrypt_offload
#   message: "KV offloaded to {optimizations.disk_offloading.tiers} is not protected by authenticated encryption: {reason}"
#   remediation: Encrypt and authenticate offloaded KV with an AEAD cipher such as AES-GCM (pccguard mitigation encrypt_offload), or keep offload in process memory only.
package pcc.rules.pcc_e_003

import data.pcc.lib
import rego.v1

off := lib.opt("disk_offloading")

tiers := object.get(off, "tiers", null)

outside_tiers := {"disk", "remote"}

# Substrings of lower-cased AEAD cipher names.
aead_markers := ["gcm", "poly1305", "siv", "ccm", "ocb"]

default applicable := false

applicable if lib.maybe_enabled(off)

leaves_process if {
	some tier in tiers
	tier in outside_tiers
}

is_aead(cipher) if {
	some marker in aead_markers
	contains(lower(cipher), marker)
}

deny contains lib.finding("optimizations.disk_offloading.encrypted", {"reason": "it is stored in plaintext"}) if {
	lib.enabled(off)
	leaves_process
	lib.get(off, "encrypted") == false
}

deny contains lib.finding("optimizations.disk_offloading.cipher", {"reason": "the cipher does not authenticate the ciphertext"}) if {
	lib.enabled(off)
	lib.get(off, "encrypted") == true
	cipher := lib.get(off, "cipher")
	is_string(cipher)
	not is_aead(cipher)
}

warn contains lib.unknown_finding("optimizations.disk_offloading.enabled") if lib.unknown(off, "enabled")

warn contains lib.unknown_finding("optimizations.disk_offloading.tiers") if tiers == null

warn contains lib.unknown_finding("optimizations.disk_offloading.encrypted") if {
	leaves_process
	lib.unknown(off, "encrypted")
}

warn contains lib.unknown_finding("optimizations.disk_offloading.cipher") if {
	lib.get(off, "encrypted") == true
	lib.unknown(off, "cipher")
}
