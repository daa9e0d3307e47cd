"""Scenario: cross-tenant prefix reuse through SGLang's real ``Engine`` on the CPU.

Tenant A sends a prompt with a secret; tenant B probes with A's prefix, then
a fresh tenant C copies the client ``cache_salt`` A used. ``meta_info.cached_tokens`` is the
oracle. The same tenant repeating itself must still hit (positive control).
Tenants are bound with ``tenant_scope`` for in-process calls; without the plugin
that binding does nothing and SGLang sees only the client salts.
"""

from __future__ import annotations

import contextlib
import time

from _common import args, cpu_engine, report

SECRET = [11, 12, 13, 14, 501, 502, 503, 504, 505, 506]
PROBE = [11, 12, 13, 14, 501, 502, 503, 999]


def main() -> None:
    model, plugin = args()

    from pccguard.adapters.sglang.runtime.salt import tenant_scope

    def scope(tenant: str):  # type: ignore[no-untyped-def]
        return tenant_scope(tenant) if plugin else contextlib.nullcontext()

    started = time.monotonic()
    engine = cpu_engine(model, random_seed=0)
    boot = time.monotonic() - started
    params = {"max_new_tokens": 2, "temperature": 0}

    def cached(tenant: str, ids: list[int], salt: str | None = None) -> int:
        with scope(tenant):
            out = engine.generate(input_ids=ids, sampling_params=params, cache_salt=salt)
        return int(out["meta_info"]["cached_tokens"])

    try:
        result = {
            "boot_s": round(boot, 1),
            "a_first": cached("A", SECRET),
            "b_probe": cached("B", PROBE),
            "a_repeat": cached("A", PROBE),
            "a_salted": cached("A", SECRET, salt="victim-salt"),
            "a_salted_repeat": cached("A", PROBE, salt="victim-salt"),
            "c_copied_salt": cached("C", PROBE, salt="victim-salt"),
        }
        result["flushed"] = bool(engine.flush_cache().success)
        result["a_after_flush"] = cached("A", PROBE)
    finally:
        engine.shutdown()
    report(result)


if __name__ == "__main__":
    main()
