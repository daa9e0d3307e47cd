# METADATA
# title: Pulled KV crosses hosts without an authenticated, encrypted channel
# description: >-
#   KV pulled between nodes travels over the data-centre network (RDMA, TCP).
#   Without an authenticated, encrypted channel the guarantee that only the
#   serving node sees a user's KV rests on every switch, host and peer on the
#   path, and a rogue peer can feed forged KV into another node's cache.
# custom:
#   id: PCC-E-004
#   requirement: E
#   optimization: pulling
#   severity: high
#   threats: [KV read in transit, forged KV injected by a rogue peer, trust in the network]
#   references: ["NIST SP 800-53 SC-8", "NIST SP 800-53 SC-23", "CWE-319", "Apple PCC Security Guide: enforceable guarantees"]
#   mitigation: encrypt_transfer
#   message: "Pulled KV crosses hosts over {optimizations.pulling.backend} without an authenticated, encrypted channel (encrypted_transport: {optimizations.pulling.encrypted_transport})"
#   remediation: Run the KV transfer over mutually authenticated TLS or an attested, encrypted channel between peers (pccguard mitigation encrypt_transfer), or keep both sides on one host.
package pcc.rules.pcc_e_004

import data.pcc.lib
import rego.v1

kv := lib.opt("pulling")

default applicable := false

applicable if {
	lib.maybe_enabled(kv)
	lib.get(kv, "crosses_hosts") != false
}

deny contains lib.finding("optimizations.pulling.encrypted_transport", {}) if {
	lib.enabled(kv)
	lib.get(kv, "crosses_hosts") == true
	lib.get(kv, "encrypted_transport") == false
}

warn contains lib.unknown_finding("optimizations.pulling.enabled") if lib.unknown(kv, "enabled")

warn contains lib.unknown_finding("optimizations.pulling.crosses_hosts") if lib.unknown(kv, "crosses_hosts")

warn contains lib.unknown_finding("optimizations.pulling.encrypted_transport") if lib.unknown(kv, "encrypted_transport")
