"""vLLM's real ``EngineCore`` with the enclave executor: greedy tokens equal the enclave runtime's reference.

vLLM schedules (batching, chunked prefill, prefix caching, block tables); the
enclave computes over its paged KV cache. The reference is the enclave
runtime's own executor with the same plan, one request at a time over a
contiguous KV buffer, so any error in block-table handling, positions,
chunking or prefix reuse shows up as a different token.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pccguard.enclave_runtime.plan import PartitionPlan, all_enclave_plan, default_plan
from tests.e2e.support import generate, make_engine, reference, request

MAX_NEW = 6
PLANS = {"all-enclave": all_enclave_plan, "default": default_plan}


def _prompts(vocab: int) -> list[list[int]]:
    rng = random.Random(7)
    shared = [rng.randrange(3, vocab) for _ in range(40)]
    return [
        [rng.randrange(3, vocab) for _ in range(7)],  # shorter than a block
        [rng.randrange(3, vocab) for _ in range(45)],  # chunked: more than the 32-token step budget
        shared + [rng.randrange(3, vocab) for _ in range(5)],
        shared + [rng.randrange(3, vocab) for _ in range(9)],  # 32 tokens (2 blocks) from the prefix cache
    ]


@pytest.fixture(scope="module", params=sorted(PLANS))
def plan_engine(
    request: pytest.FixtureRequest, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PartitionPlan, Any]]:
    mp = pytest.MonkeyPatch()
    config = tmp_path_factory.mktemp("pccguard") / "pccguard.yaml"
    # scrub_freed_kv on: new_block_ids_to_zero reaches the enclave; the plugin passes the plan on.
    config.write_text(
        f"profile: multi-tenant-baseline\nmitigations: {{hybrid_executor_plan: {request.param}}}\n",
        encoding="utf-8",
    )
    mp.setenv("PCCGUARD_CONFIG", str(config))
    mp.setenv("PCCGUARD_ENCLAVE_DEBUG", "1")
    engine = make_engine(tiny_llama)
    try:
        plan = PLANS[request.param]()
        assert engine.model_executor.worker.enclave.plan.name == plan.name
        yield plan, engine
    finally:
        engine.shutdown()
        mp.undo()


@pytest.fixture(scope="module")
def vocab(tiny_llama: Path) -> int:
    import json

    return int(json.loads((tiny_llama / "config.json").read_text())["vocab_size"])


def test_batched_chunked_and_cached_equal_reference(
    plan_engine: tuple[PartitionPlan, Any], tiny_llama: Path, vocab: int
) -> None:
    plan, engine = plan_engine
    prompts = _prompts(vocab)
    want = reference(tiny_llama, plan, prompts, MAX_NEW)
    # Three at once (batching, chunked prefill), then the prefix sharer alone (a cache hit).
    got = generate(
        engine, [request(f"r{i}", p, max_tokens=MAX_NEW, tenant="bob") for i, p in enumerate(prompts[:3])]
    )
    got |= generate(engine, [request("r3", prompts[3], max_tokens=MAX_NEW, tenant="bob")])
    assert [got[f"r{i}"] for i in range(4)] == want


def test_prefix_hit_really_skips_compute(plan_engine: tuple[PartitionPlan, Any], vocab: int) -> None:
    """The second request's first step computes only its uncached suffix (vLLM reused the enclave's blocks)."""
    _, engine = plan_engine
    rng = random.Random(11)
    prefix = [rng.randrange(3, vocab) for _ in range(32)]
    generate(engine, [request("p0", [*prefix, 5, 6, 7], max_tokens=1, tenant="alice")])
    seen: list[int] = []
    worker = engine.model_executor.worker
    original = worker.execute_model

    def spy(so: Any) -> Any:
        seen.extend(r.num_computed_tokens for r in so.scheduled_new_reqs)
        return original(so)

    worker.execute_model = spy
    try:
        generate(engine, [request("p1", [*prefix, 9, 10], max_tokens=1, tenant="alice")])
    finally:
        worker.execute_model = original
    assert seen == [32]


def test_scrub_rpc_zeroes_enclave_blocks(plan_engine: tuple[PartitionPlan, Any], vocab: int) -> None:
    """pccguard's scrub channel reaches the enclave's KV cache through ``collective_rpc``."""
    _, engine = plan_engine
    generate(engine, [request("s0", list(range(3, 3 + 20)), max_tokens=1)])
    enclave = engine.model_executor.worker.enclave
    used = [
        b
        for b in range(engine.scheduler.kv_cache_manager.block_pool.num_gpu_blocks)
        if enclave.block_nonzero(b)
    ]
    assert used, "positive control: the request left KV in some block"
    assert engine.collective_rpc("pccguard_scrub_blocks", args=(used,)) == [len(used)]
    assert not any(enclave.block_nonzero(b) for b in used)


def test_check_health_and_draft_tokens(plan_engine: tuple[PartitionPlan, Any]) -> None:
    _, engine = plan_engine
    engine.model_executor.check_health()
    assert engine.model_executor.take_draft_token_ids() is None


def test_freed_blocks_are_zeroed_in_the_enclave(plan_engine: tuple[PartitionPlan, Any], vocab: int) -> None:
    """With ``scrub_freed_kv``, the blocks vLLM asks to zero (``new_block_ids_to_zero``) are zeroed in the enclave.

    Enough distinct tenants cycle through the cache that vLLM must hand out
    blocks another tenant used before; each such block must arrive zeroed.
    """
    _, engine = plan_engine
    worker = engine.model_executor.worker
    asked: list[int] = []
    original = worker.execute_model

    def spy(so: Any) -> Any:
        asked.extend(so.new_block_ids_to_zero or [])
        return original(so)

    worker.execute_model = spy
    before = worker.enclave.kv_stats()["zeroed_blocks"]
    rng = random.Random(3)
    try:
        for i in range(12):  # 12 x 5 blocks > the 48 in the cache: reuse and LRU eviction
            prompt = [rng.randrange(3, vocab) for _ in range(70)]
            generate(engine, [request(f"z{i}", prompt, max_tokens=1, tenant=f"t{i}")])
    finally:
        worker.execute_model = original
    assert asked, "positive control: vLLM reused blocks and asked for zeroing"
    assert worker.enclave.kv_stats()["zeroed_blocks"] - before >= len(set(asked))


def test_preemption_and_resume_equal_reference(tiny_llama: Path, vocab: int, tmp_path: Path) -> None:
    """Too few blocks for the batch: vLLM preempts and resumes requests; tokens still equal the reference."""
    mp = pytest.MonkeyPatch()
    config = tmp_path / "pccguard.yaml"
    config.write_text(
        "profile: multi-tenant-baseline\nmitigations: {hybrid_executor_plan: all-enclave}\n", encoding="utf-8"
    )
    mp.setenv("PCCGUARD_CONFIG", str(config))
    rng = random.Random(13)
    prompts = [[rng.randrange(3, vocab) for _ in range(40)] for _ in range(4)]
    engine = make_engine(tiny_llama, num_gpu_blocks_override=12, max_model_len=128)
    try:
        preempted: list[str] = []
        worker = engine.model_executor.worker
        original = worker.execute_model

        def spy(so: Any) -> Any:
            preempted.extend(so.scheduled_cached_reqs.resumed_req_ids)
            return original(so)

        worker.execute_model = spy
        got = generate(
            engine, [request(f"q{i}", p, max_tokens=20, tenant="q") for i, p in enumerate(prompts)]
        )
    finally:
        engine.shutdown()
        mp.undo()
    assert preempted, "positive control: the cache was too small and vLLM resumed a preempted request"
    assert [got[f"q{i}"] for i in range(4)] == reference(tiny_llama, all_enclave_plan(), prompts, 20)
