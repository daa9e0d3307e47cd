# METADATA
# title: Disaggregated prefill KV crosses hosts without an authenticated, encrypted channel
# description: >-
#   Prefill/decode transfer connectors (NIXL, Mooncake, LMCache, SGLang's
#   bootstrap protocol) move KV between hosts unencrypted and unauthenticated by
#   default. The guarantee that only the serving nodes see a user's KV then rests
#   on the network and on every peer that can reach the transfer port. Applies
#   only when KV crosses hosts.
# custom:
#   id: PCC-E-005
#   requirement: E
#   optimization: disaggregated_prefill
#   severity: high
#   threats: [KV read in transit, forged KV injected by a rogue peer, trust in the network]
#   references: ["NIST SP 800-53 SC-8", "NIST SP 800-53 SC-23", "CWE-319", "Apple PCC Security Guide: enforceable guarantees"]
#   mitigation: encrypt_transfer
#   message: "Disaggregated prefill KV crosses hosts over {optimizations.disaggregated_prefill.backend} without an authenticated, encrypted channel (encrypted_transport: {optimizations.disaggregated_prefill.encrypted_transport})"
#   remediation: Run the KV transfer over mutually authenticated TLS or an attested, encrypted channel between peers (pccguard mitigation encrypt_transfer), or keep both sides on one host.
package pcc.rules.pcc_e_005

import data.pcc.lib
import rego.v1

kv := lib.opt("disaggregated_prefill")

default applicable := false

applicable if {
	lib.maybe_enabled(kv)
	lib.get(kv, "crosses_hosts") != false
}

deny contains lib.finding("optimizations.disaggregated_prefill.encrypted_transport", {}) if {
	lib.enabled(kv)
	lib.get(kv, "crosses_hosts") == true
	lib.get(kv, "encrypted_transport") == false
}

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.enabled") if lib.unknown(kv, "enabled")

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.crosses_hosts") if lib.unknown(kv, "crosses_hosts")

warn contains lib.unknown_finding("optimizations.disaggregated_prefill.encrypted_transport") if lib.unknown(kv, "encrypted_transport")
