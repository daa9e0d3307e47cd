"""scrub_freed_kv in the real EngineCore: freed blocks hold no earlier tenant's KV, with the plugin; they do without.

Every test has its positive control: the canary is in tenant A's blocks
before they are freed, and the same scenario without the plugin leaves it
there (vLLM as shipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vllm.v1.request import RequestStatus

from tests.vllm.support import DECODE_TOKEN, add, make_engine, request, run_until_idle, salt_for

CANARY = list(range(300, 340))  # 40 tokens: 2 full blocks + a partial one; values 300..339 in the KV
CANARY_VALUES = {float(t) for t in CANARY}

BASELINE = "profile: multi-tenant-baseline\n"
DISABLED = "enabled: false\n"


def _blocks_of(engine: Any, req_id: str) -> list[int]:
    manager = engine.scheduler.kv_cache_manager
    return [b.block_id for b in manager.get_blocks(req_id).blocks[0] if not b.is_null]


def _residue(engine: Any, block_ids: list[int]) -> dict[int, set[float]]:
    """Blocks among ``block_ids`` whose KV still holds a canary value."""
    worker = engine.model_executor.worker
    found = {}
    for block_id in block_ids:
        hit = worker.block_values(block_id) & CANARY_VALUES
        if hit:
            found[block_id] = hit
    return found


def _free_blocks(engine: Any) -> list[int]:
    pool = engine.scheduler.kv_cache_manager.block_pool
    return [b.block_id for b in pool.free_block_queue.get_all_free_blocks() if not b.is_null]


def _start_a(engine: Any, **kw: Any) -> list[int]:
    """Run tenant A's request until its prompt is in the KV cache; return its blocks (positive control)."""
    add(
        engine,
        request("A", CANARY, salt=salt_for(engine, "tenant-a"), max_tokens=kw.pop("max_tokens", 4), **kw),
    )
    engine.step()
    engine.step()
    blocks = _blocks_of(engine, "A")
    assert blocks, "tenant A was given no blocks"
    assert _residue(engine, blocks), (
        "positive control: the canary must be in A's blocks before they are freed"
    )
    return blocks


@pytest.fixture(params=["plugin", "vllm-as-shipped"])
def mode(request: pytest.FixtureRequest, plugin_config: Any) -> str:
    plugin_config(BASELINE if request.param == "plugin" else DISABLED)
    return str(request.param)


def _check(engine: Any, blocks: list[int], mode: str) -> None:
    residue = _residue(engine, blocks)
    if mode == "plugin":
        assert residue == {}, f"freed blocks still hold tenant A's KV: {sorted(residue)}"
    else:
        assert residue, "without the plugin vLLM leaves the KV in freed blocks (control)"


def test_finish(tiny_model: Path, mode: str) -> None:
    engine = make_engine(tiny_model, enable_prefix_caching=False)
    blocks = _start_a(engine)
    run_until_idle(engine)
    assert set(blocks) <= set(_free_blocks(engine))
    _check(engine, blocks, mode)


def test_abort(tiny_model: Path, mode: str) -> None:
    engine = make_engine(tiny_model, enable_prefix_caching=False)
    blocks = _start_a(engine, max_tokens=50)
    engine.abort_requests(["A"])
    run_until_idle(engine)
    assert engine.scheduler.requests == {}
    _check(engine, blocks, mode)


def _preempt_and_drop_a(engine: Any) -> None:
    """Preempt A the way ``schedule()`` does under memory pressure, then drop it so it does not come back."""
    scheduler = engine.scheduler
    victim = scheduler.requests["A"]
    scheduler.running.remove(victim)
    scheduler._preempt_request(victim, 0.0)
    assert victim.status == RequestStatus.PREEMPTED
    assert _blocks_of(engine, "A") == []
    scheduler.finish_requests(["A"], RequestStatus.FINISHED_ABORTED)


def test_preemption(tiny_model: Path, mode: str) -> None:
    engine = make_engine(tiny_model, enable_prefix_caching=False)
    blocks = _start_a(engine, max_tokens=50)
    _preempt_and_drop_a(engine)
    run_until_idle(engine)
    _check(engine, blocks, mode)


def test_preemption_then_other_tenant(tiny_model: Path, mode: str) -> None:
    """The preempted blocks go to the next tenant; that tenant must never see A's values in them."""
    engine = make_engine(tiny_model, enable_prefix_caching=False)
    blocks = _start_a(engine, max_tokens=50)
    _preempt_and_drop_a(engine)
    add(engine, request("B", [5] * 3, salt=salt_for(engine, "tenant-b"), max_tokens=5))
    engine.step()
    reused = [b for b in _blocks_of(engine, "B") if b in blocks]
    assert reused, "B should be given one of A's freed blocks (LIFO reuse)"
    if mode == "plugin":
        assert _residue(engine, reused) == {}
    else:
        assert _residue(engine, reused), "without the plugin B's block still holds A's KV (control)"


def test_prefix_cache_eviction(tiny_model: Path, mode: str) -> None:
    """LRU eviction hands A's cached blocks to a filler that only partly overwrites the last one."""
    engine = make_engine(tiny_model, max_model_len=624)
    add(
        engine, request("A", CANARY[:32], salt=salt_for(engine, "tenant-a"), max_tokens=4)
    )  # exactly 2 full blocks
    engine.step()
    blocks = _blocks_of(engine, "A")[:2]
    assert _residue(engine, blocks), "positive control: A's canary is in its blocks"
    run_until_idle(engine)
    pool = engine.scheduler.kv_cache_manager.block_pool
    assert all(pool.blocks[b].block_hash is not None for b in blocks), "A's full blocks stay cached"
    # 620 tokens = 38 full blocks + 12 tokens: the pool (39 blocks) must evict both cached blocks.
    before = {b: pool.blocks[b].block_hash for b in blocks}
    add(engine, request("F", [20] * 620, salt=salt_for(engine, "filler"), max_tokens=1))
    run_until_idle(engine)
    assert all(pool.blocks[b].block_hash != before[b] for b in blocks), "both of A's entries were evicted"
    _check(engine, blocks, mode)


def test_prefix_cache_reset(tiny_model: Path, mode: str) -> None:
    engine = make_engine(tiny_model)
    blocks = _start_a(engine)
    run_until_idle(engine)
    pool = engine.scheduler.kv_cache_manager.block_pool
    assert any(pool.blocks[b].block_hash is not None for b in blocks)
    assert engine.reset_prefix_cache() is True
    assert len(pool.cached_block_hash_to_block) == 0
    run_until_idle(engine)
    _check(engine, blocks, mode)


def test_decode_token_written(tiny_model: Path, plugin_config: Any) -> None:
    """The harness writes decode tokens too (so a finished request's whole footprint is checked)."""
    plugin_config(DISABLED)
    engine = make_engine(tiny_model, enable_prefix_caching=False)
    add(engine, request("A", CANARY[:8], max_tokens=3))
    run_until_idle(engine)
    values = set()
    for block_id in range(engine.scheduler.kv_cache_manager.block_pool.num_gpu_blocks):
        values |= engine.model_executor.worker.block_values(block_id)
    assert float(DECODE_TOKEN) in values
