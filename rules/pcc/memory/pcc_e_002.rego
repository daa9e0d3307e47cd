# METADATA
# title: Prefix-cache keys use a non-cryptographic hash
# description: >-
#   Prefix-cache lookups trust that equal block hashes mean equal token blocks
#   (and equal salts). With a non-cryptographic hash (Python hash(), xxhash,
#   murmur) an attacker can craft colliding blocks to read or poison another
#   request's cached KV, so isolation by salted key is not enforced. Only
#   algorithms from the SHA-2, SHA-3 and BLAKE2/3 families are accepted, and
#   radix trees that compare token ids exactly (hash_algorithm: exact).
# custom:
#   id: PCC-E-002
#   requirement: E
#   optimization: prefix_caching
#   severity: medium
#   threats: [crafted hash collisions, cache poisoning, cross-request KV reuse]
#   references: ["GHSA-rm76-4mrf-v9r8 (vLLM predictable prefix-cache hash)", "CWE-328", "NIST SP 800-53 SC-13", "OWASP LLM02:2025 Sensitive Information Disclosure"]
#   mitigation: disable:prefix_caching
#   message: "Prefix-cache block hashes use {optimizations.prefix_caching.hash_algorithm}, which is not a cryptographic hash"
#   remediation: Configure a cryptographic block hash (vLLM --prefix-caching-hash-algo sha256 or sha256_cbor, the default since v0.10.2), or disable prefix caching.
package pcc.rules.pcc_e_002

import data.pcc.lib
import rego.v1

pc := lib.opt("prefix_caching")

# Accepted prefixes of lower-cased algorithm names.
cryptographic := ["sha256", "sha-256", "sha384", "sha-384", "sha512", "sha-512", "sha3", "blake2", "blake3"]

default applicable := false

applicable if lib.maybe_enabled(pc)

is_cryptographic(name) if {
	some prefix in cryptographic
	startswith(lower(name), prefix)
}

# Exact token matching has no collisions to craft.
is_cryptographic(name) if lower(name) in {"exact", "exact_match"}

deny contains lib.finding("optimizations.prefix_caching.hash_algorithm", {}) if {
	lib.enabled(pc)
	algo := lib.get(pc, "hash_algorithm")
	is_string(algo)
	not is_cryptographic(algo)
}

warn contains lib.unknown_finding("optimizations.prefix_caching.enabled") if lib.unknown(pc, "enabled")

warn contains lib.unknown_finding("optimizations.prefix_caching.hash_algorithm") if lib.unknown(pc, "hash_algorithm")
