# METADATA
# title: Offloaded KV is not cryptographically erasable
# description: >-
#   KV offloaded to CPU memory, local disk or a remote store is a copy of user
#   data outside the KV cache, and it outlives the request (on disk, across
#   restarts). Encrypting it under a key that lives only in the serving
#   process's memory makes it unreadable once the process ends (the pattern of
#   PCC's Ephemeral Data Mode). Plaintext offload, or a key that is persistent
#   or shared beyond the process, keeps the data recoverable.
# custom:
#   id: PCC-S-006
#   requirement: S
#   optimization: disk_offloading
#   severity: high
#   threats: [data leak from storage, persistence across restarts, KV inversion]
#   references: ["NIST SP 800-53 SC-28", "NIST SP 800-53 SC-12", "CWE-312", "Luo et al., arXiv 2508.09442 (Shadow in the Cache)", "ISO/IEC 27001:2022 A.8.10"]
#   mitigation: encrypt_offload
#   message: "Offloaded KV ({optimizations.disk_offloading.tiers}) is recoverable after the request: {reason}"
#   remediation: Encrypt offloaded KV under per-process keys held only in memory (pccguard mitigation encrypt_offload), or disable offloading.
package pcc.rules.pcc_s_006

import data.pcc.lib
import rego.v1

off := lib.opt("disk_offloading")

default applicable := false

applicable if lib.maybe_enabled(off)

deny contains lib.finding("optimizations.disk_offloading.encrypted", {"reason": "it is stored in plaintext"}) if {
	lib.enabled(off)
	lib.get(off, "encrypted") == false
}

deny contains lib.finding("optimizations.disk_offloading.key_scope", {"reason": "the encryption key outlives the process (key_scope: persistent or shared)"}) if {
	lib.enabled(off)
	lib.get(off, "encrypted") == true
	lib.get(off, "key_scope") in {"persistent", "shared"}
}

warn contains lib.unknown_finding("optimizations.disk_offloading.enabled") if lib.unknown(off, "enabled")

warn contains lib.unknown_finding("optimizations.disk_offloading.encrypted") if lib.unknown(off, "encrypted")

warn contains lib.unknown_finding("optimizations.disk_offloading.key_scope") if {
	lib.get(off, "encrypted") == true
	lib.unknown(off, "key_scope")
}
