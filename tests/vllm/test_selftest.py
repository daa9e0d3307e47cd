"""vLLM's start-time self-tests on the real EngineCore: each mitigation proven before the first request.

With the plugin, every engine-core mitigation is proven at start and recorded
with what it covered. Without it (the control), the same checks run on vLLM as
shipped report the residue. Each fault injected into a mitigation refuses the
start with one line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.vllm.runtime.selftest import engine_core_checks
from pccguard.enforcement.selftest import run_checks
from pccguard.errors import EnforcementError
from tests.vllm.support import NUM_LAYERS, add, make_engine, request, run_until_idle, salt_for

BASELINE = "profile: multi-tenant-baseline\n"
DISABLED = "enabled: false\n"
KV_CHECKS = ("prefix_cache_ttl", "scrub_freed_kv", "tenant_cache_salt")


def test_every_engine_core_mitigation_is_proven_at_start(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    try:
        outcome = engine.scheduler.pccguard_selftests
        records = {r.mitigation: r for r in outcome.records}
        assert set(KV_CHECKS) <= set(records), records
        assert all(r.passed for r in records.values())
        scrub = records["scrub_freed_kv"]
        assert scrub.blocks == 4 and scrub.layers == NUM_LAYERS and scrub.ranks == 1 and scrub.device == "cpu"
        assert records["prefix_cache_ttl"].blocks == 2 and records["prefix_cache_ttl"].layers == NUM_LAYERS
        assert "different block hashes" in records["tenant_cache_salt"].checked
        # The engine serves afterwards, and the test requests left nothing behind.
        pool = engine.scheduler.kv_cache_manager.block_pool
        assert pool.get_num_free_blocks() == pool.num_gpu_blocks - 1
        assert not engine.scheduler.has_requests()
        add(engine, request("A", list(range(300, 340)), salt=salt_for(engine, "tenant-a")))
        run_until_idle(engine)
    finally:
        engine.shutdown()


def test_without_the_plugin_the_same_checks_report_the_residue(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(DISABLED)
    engine = make_engine(tiny_model)
    try:
        assert not hasattr(engine.scheduler, "pccguard_selftests")
        records = {r.mitigation: r for r in run_checks(engine_core_checks(engine), KV_CHECKS)}
        assert not any(r.passed for r in records.values()), records
        assert "canary still in 4 of 4 freed blocks" in (records["scrub_freed_kv"].found or "")
        assert "client-chosen cache_salt was used as given" in (records["tenant_cache_salt"].found or "")
        assert "outlived its TTL" in (records["prefix_cache_ttl"].found or "")
    finally:
        engine.shutdown()


def _skip_last_tensor(self: Any, block_ids: list[int]) -> None:
    import ctypes

    for base, stride, nbytes, _count in self.spans[:-1]:
        for block_id in block_ids:
            ctypes.memset(base + int(block_id) * stride, 0, nbytes)


def _admit_anything(self: Any, claimed: object) -> str:
    return str(claimed)


@pytest.mark.parametrize(
    ("target", "replacement", "found"),
    [
        (
            "pccguard.adapters.vllm.runtime.worker.CpuBlockZeroer.__call__",
            _skip_last_tensor,
            f"self-test of prefix_cache_ttl failed: canary still in 2 of 2 freed blocks of KV tensor "
            f"layers.{NUM_LAYERS - 1}.attn",
        ),
        (
            "pccguard.enforcement.tenancy.gate.SaltGate.admit",
            _admit_anything,
            # The tokens themselves become salts: each request of one tenant hashes differently.
            "self-test of tenant_cache_salt failed: one tenant's prompt hashed differently twice",
        ),
        (
            "pccguard.adapters.vllm.runtime.ttl.PrefixTTL.sweep",
            lambda self: [],
            "self-test of prefix_cache_ttl failed: 2 of 2 blocks of a cached prefix outlived its TTL",
        ),
    ],
    ids=["zeroer-skips-a-layer", "salt-not-applied", "ttl-never-expires"],
)
def test_a_broken_mitigation_refuses_the_start(
    tiny_model: Path,
    plugin_config: Any,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    replacement: Any,
    found: str,
) -> None:
    plugin_config(BASELINE)
    module, _, attr = target.rpartition(".")
    owner_path, _, cls = module.rpartition(".")
    import importlib

    owner = getattr(importlib.import_module(owner_path), cls)
    monkeypatch.setattr(owner, attr, replacement)
    with pytest.raises(EnforcementError) as info:
        make_engine(tiny_model)
    message = str(info.value)
    assert "\n" not in message and message.startswith("pccguard refuses to start vllm: ")
    assert found in message, message
