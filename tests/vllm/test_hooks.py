"""Proof of patch and the block-pool observer, on the real vLLM EngineCore and BlockPool.

The hooks are installed in this process by the plugin (vLLM loads it when a
configuration is built). Each fault removes or replaces one patched attribute
and sees the start refused, naming the target; the normal start is the
positive control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vllm.v1.engine.core import EngineCore
from vllm.v1.engine.input_processor import InputProcessor

from pccguard.adapters.vllm.runtime import hooks, targets
from pccguard.adapters.vllm.runtime.scrub import ScrubTracker
from pccguard.adapters.vllm.runtime.ttl import PrefixTTL
from pccguard.errors import EnforcementError
from tests.vllm.support import add, make_engine, request, run_until_idle

BASELINE = "profile: multi-tenant-baseline\n"
CANARY = list(range(300, 332))  # two full blocks, values 300..331 in the KV
CANARY_VALUES = {float(t) for t in CANARY}


def test_the_normal_start_proves_every_hook(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    assert type(engine.scheduler).__name__ == "PccguardScheduler"
    hooks.verify_engine_core()
    hooks.verify_frontend()
    assert EngineCore.preprocess_add_request.__wrapped__ is not None


@pytest.mark.parametrize(
    ("owner", "attr", "target"),
    [
        (EngineCore, "preprocess_add_request", targets.PREPROCESS_ADD_REQUEST),
        (InputProcessor, "_validate_params", targets.VALIDATE_PARAMS),
    ],
    ids=["engine-core", "frontend"],
)
def test_a_replaced_hook_refuses_the_start(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch, owner: type, attr: str, target: str
) -> None:
    plugin_config(BASELINE)
    make_engine(tiny_model)  # positive control: the same start passes with the hooks in place
    monkeypatch.setattr(owner, attr, getattr(owner, attr).__wrapped__)  # someone else's plain version
    with pytest.raises(EnforcementError, match=f"hooks not applied to {target}"):
        make_engine(tiny_model)


def test_a_removed_target_refuses_the_start(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_config(BASELINE)
    make_engine(tiny_model)  # positive control
    monkeypatch.delattr(EngineCore, "preprocess_add_request")
    with pytest.raises(EnforcementError, match=f"hook targets missing: {targets.PREPROCESS_ADD_REQUEST}"):
        hooks.verify_engine_core()
    with pytest.raises(EnforcementError, match=f"hook target missing: {targets.PREPROCESS_ADD_REQUEST}"):
        hooks.install_engine_core_hooks()


def test_the_constructor_end_hook_replaced_refuses_the_start(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``ON_SET`` hook that proves a spawned engine core is proven like the others."""
    plugin_config(BASELINE)
    make_engine(tiny_model)  # positive control
    assert isinstance(EngineCore.__dict__["_idle_state_callbacks"], property)
    monkeypatch.setattr(EngineCore, "_idle_state_callbacks", None)  # someone else's class attribute
    with pytest.raises(EnforcementError, match=f"hooks not applied to {targets.ENGINE_CORE_BUILT}"):
        hooks.verify_engine_core()


def test_the_process_age_falls_back_to_the_strict_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from pccguard.enforcement.selftest import process_age_seconds

    age = process_age_seconds()
    assert age is not None and age > 0  # positive control: this process has an age
    monkeypatch.setattr(psutil, "Process", lambda: (_ for _ in ()).throw(OSError("no /proc")))
    assert process_age_seconds() is None  # unknown: the 2 s floor holds, never a longer budget


def test_another_vllm_release_is_refused() -> None:
    hooks.TABLE.require_version(targets.VERSION)  # positive control
    with pytest.raises(EnforcementError, match=r"pinned to vllm 0\.33\.0, this is 0\.34\.0"):
        hooks.TABLE.require_version("0.34.0")


def test_preprocess_add_request_is_wrapped_once() -> None:
    """Both admission checks run from the one wrapper: no second pccguard wrapper beneath it."""
    wrapper = EngineCore.preprocess_add_request
    assert not hasattr(wrapper.__wrapped__, "__wrapped__")


def test_an_unresolvable_executor_name_is_not_taken_for_a_plain_one(
    tiny_model: Path, plugin_config: Any
) -> None:
    from vllm.engine.arg_utils import EngineArgs

    plugin_config("enabled: false\n")
    from pccguard.adapters.vllm.runtime.enclave_requests import uses_enclave_executor

    config = EngineArgs(model=str(tiny_model), skip_tokenizer_init=True).create_engine_config()
    assert uses_enclave_executor(config) is False  # control: a resolvable, plain executor
    config.parallel_config.distributed_executor_backend = "pccguard_no_such_module.Executor"
    with pytest.raises(ModuleNotFoundError):
        uses_enclave_executor(config)


# ---------------------------------------------------------------------- block-pool observer


def test_ttl_entries_stay_bounded_and_stale_ones_never_expire(tiny_model: Path, plugin_config: Any) -> None:
    """Entries whose block lost its cache entry are compacted away; the live ones still expire on time."""
    plugin_config("enabled: false\n")
    engine = make_engine(tiny_model)
    pool = engine.scheduler.kv_cache_manager.block_pool
    now = [0.0]
    ttl = PrefixTTL(pool, 10.0, clock=lambda: now[0], compact_above=4)

    def cached() -> set[int]:
        return {b.block_id for b in pool.blocks if b.block_hash is not None}

    add(engine, request("A", CANARY, max_tokens=1))
    run_until_idle(engine)
    first = cached()
    assert len(first) == 2 and ttl.entries == 2, "positive control: A's two full blocks are recorded"
    pool.evict_blocks(first)  # they leave the prefix cache: their entries are now stale
    for name, base in (("B", 400), ("C", 440)):
        add(engine, request(name, list(range(base, base + 32)), max_tokens=1))
        run_until_idle(engine)
    live = cached()
    assert len(live) == 4 and ttl.entries == 4, "A's stale entries were compacted away"
    now[0] = 11.0
    assert sorted(ttl.sweep()) == sorted(live) and cached() == set()
    assert ttl.entries == 0 and ttl.next_expiry() is None


@pytest.mark.parametrize("order", ["scrub-first", "ttl-first"])
def test_a_ttl_eviction_is_scrubbed_in_either_order(tiny_model: Path, plugin_config: Any, order: str) -> None:
    """vLLM's own scheduler and pool; scrub and TTL attached in both orders, one clock the test moves."""
    plugin_config("enabled: false\n")
    engine = make_engine(tiny_model)
    pool = engine.scheduler.kv_cache_manager.block_pool
    now = [0.0]
    if order == "scrub-first":
        scrub = ScrubTracker(pool)
        ttl = PrefixTTL(pool, 10.0, clock=lambda: now[0])
    else:
        ttl = PrefixTTL(pool, 10.0, clock=lambda: now[0])
        scrub = ScrubTracker(pool)
    add(engine, request("A", CANARY, max_tokens=1))
    engine.step()
    run_until_idle(engine)
    scrub.drain()  # what the finish queued (the partial decode block), not under test here
    cached = [b.block_id for b in pool.blocks if b.block_hash is not None]
    assert cached, "A's full blocks stay prefix-cache entries"
    worker = engine.model_executor.worker
    assert all(worker.block_values(b) & CANARY_VALUES for b in cached), "positive control: the canary"
    assert ttl.sweep() == [] and scrub.drain() == ([], {}), "control: within the TTL nothing expires"
    now[0] = 11.0
    expired = ttl.sweep()
    assert sorted(expired) == sorted(cached)
    assert all(pool.blocks[b].block_hash is None for b in cached), "evicted from the prefix cache"
    ids, reasons = scrub.drain()
    assert sorted(ids) == sorted(cached) and reasons == {"evict": len(cached)}
