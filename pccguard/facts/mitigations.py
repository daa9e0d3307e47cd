"""The closed vocabulary of mitigation ids shared by rules and adapters.

A rule names the mitigation that would satisfy it; an adapter declares which
ones it implements. A rule whose mitigation the adapter cannot install stays a
failure, so the vocabulary must be closed: a typo can never match anything.
"""

from __future__ import annotations

from pccguard.errors import InputError

#: Mitigations that are not of the ``disable:<id>`` form, with what each guarantees.
MITIGATIONS: dict[str, str] = {
    "scrub_freed_kv": "KV blocks or slots are zeroed when their last reference is dropped, before reuse",
    "tenant_cache_salt": "the server derives the prefix-cache salt from the authenticated tenant",
    "prefix_cache_ttl": "cached prefixes older than a TTL are evicted and scrubbed",
    "encrypt_offload": "KV leaving the KV cache is AES-GCM encrypted under in-memory per-start keys",
    "encrypt_transfer": "KV crossing hosts travels over an authenticated, encrypted channel",
    "close_privileged_endpoints": "admin, dev and debug endpoints are closed or require the admin key",
    "allowlist_logs": "only allowlisted structured log records and metrics leave the process",
    "pad_stream": "streamed responses are padded so that token lengths do not leak",
    "hybrid_executor": "private model parts run in an enclave; the accelerator sees blinded data only",
    "per_tenant_spec_corpus": "speculative-decoding stores are partitioned by tenant",
    "cache_agnostic_scheduling": "queue order and routing do not depend on cache contents",
    "server_side_priority": "request priority is fixed by the server, not taken from the client",
    "attested_build": "the running build is measured, attested and logged for transparency",
    "fix_configuration": "no runtime mitigation exists: the configuration itself must change (never installed)",
}

DISABLE_PREFIX = "disable:"


def known_disable_targets() -> frozenset[str]:
    """Every id that ``disable:`` may name: catalog optimizations and observability risks."""
    from pccguard.facts.catalog import load_catalog

    catalog = load_catalog()
    return frozenset(catalog.optimization_ids() | catalog.observability_ids())


def is_valid_mitigation(mitigation_id: str) -> bool:
    if mitigation_id in MITIGATIONS:
        return True
    if mitigation_id.startswith(DISABLE_PREFIX):
        return mitigation_id[len(DISABLE_PREFIX) :] in known_disable_targets()
    return False


def validate_mitigation(mitigation_id: str) -> str:
    """Return ``mitigation_id`` or raise ``InputError`` naming it."""
    if not is_valid_mitigation(mitigation_id):
        raise InputError(f"unknown mitigation id {mitigation_id!r}")
    return mitigation_id
