# METADATA
# title: Freed token-granular KV slots are reused without scrubbing
# description: >-
#   Token-granular KV management (LightLLM TokenAttention, SGLang's token pool)
#   returns freed slots to the allocator without clearing them. The next request
#   that receives a slot can read the previous user's keys and values, so user
#   data outlives its request at the finest granularity.
# custom:
#   id: PCC-S-002
#   requirement: S
#   optimization: token_attention
#   severity: high
#   threats: [residue read by the next tenant given the slot]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4", "CWE-226"]
#   mitigation: scrub_freed_kv
#   message: "Token-granular KV slots are reused without being zeroed (scrub_on_free: {optimizations.token_attention.scrub_on_free})"
#   remediation: Zero freed slots before they return to the allocator (the pccguard plugin hooks the allocator's free path), or use an engine whose allocator scrubs.
package pcc.rules.pcc_s_002

import data.pcc.lib
import rego.v1

ta := lib.opt("token_attention")

default applicable := false

applicable if lib.maybe_enabled(ta)

deny contains lib.finding("optimizations.token_attention.scrub_on_free", {}) if {
	lib.get(ta, "scrub_on_free") == false
}

warn contains lib.unknown_finding("optimizations.token_attention.enabled") if lib.unknown(ta, "enabled")

warn contains lib.unknown_finding("optimizations.token_attention.scrub_on_free") if lib.unknown(ta, "scrub_on_free")
