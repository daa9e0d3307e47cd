"""The vLLM adapter: facts from ``vllm serve`` arguments and the live engine, and the runtime mitigations.

Importing this package does not import vLLM; ``facts`` and ``runtime`` do.
"""

#: Mitigation ids the vLLM runtime can install (see ``runtime``); a rule asking for any other stays failing.
IMPLEMENTED_MITIGATIONS: tuple[str, ...] = (
    "scrub_freed_kv",
    "tenant_cache_salt",
    "prefix_cache_ttl",
    "encrypt_offload",
    "server_side_priority",
    "hybrid_executor",
    "disable:cache_hit_metrics",
    "close_privileged_endpoints",
    "allowlist_logs",
)


_static_checks = 0


def static_check_active() -> bool:
    """True while ``collect_facts`` resolves a configuration: the serving plugin must not enforce then."""
    return _static_checks > 0


class static_check:
    """Mark a static check (``pccguard check --engine vllm``) for the duration of a ``with`` block."""

    def __enter__(self) -> None:
        global _static_checks
        _static_checks += 1

    def __exit__(self, *exc: object) -> None:
        global _static_checks
        _static_checks -= 1
