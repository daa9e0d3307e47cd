# METADATA
# title: Freed KV blocks are reused without scrubbing
# description: >-
#   A paged KV cache hands blocks freed by one request to the next request
#   without clearing them. Stale KV of an earlier user stays readable in memory
#   that now belongs to someone else, so user data outlives its request.
# custom:
#   id: PCC-S-001
#   requirement: S
#   optimization: paging
#   severity: high
#   threats: [residue read by the next tenant given the block]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "NIST SP 800-53 SC-4", "CWE-226"]
#   mitigation: scrub_freed_kv
#   message: "Paged KV blocks are reused without being zeroed (scrub_on_free: {scrub_on_free})"
#   remediation: Enable the pccguard plugin so freed blocks are zeroed before reuse.
package pcc.rules.pcc_s_001

import data.pcc.lib
import rego.v1

paging := lib.opt("paging")

default applicable := false

applicable if lib.maybe_enabled(paging)

deny contains lib.finding("optimizations.paging.scrub_on_free", {"scrub_on_free": false}) if {
	lib.get(paging, "scrub_on_free") == false
}

warn contains lib.unknown_finding("optimizations.paging.scrub_on_free") if {
	lib.unknown(paging, "scrub_on_free")
}
