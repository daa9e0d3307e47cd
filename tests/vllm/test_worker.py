"""The worker extension: the zeroing it adds is exactly vLLM's (same bytes zeroed), only faster, and bounded."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.worker.cpu_model_runner import CPUModelRunner

from pccguard.adapters.vllm.runtime.worker import CpuBlockZeroer, _force_zeroing
from tests.vllm.support import add, make_engine, request, run_until_idle, salt_for


def _runner(seed: int) -> Any:
    torch.manual_seed(seed)
    names = ["l0", "l1"]
    spec = FullAttentionSpec(block_size=16, num_kv_heads=2, head_size=8, dtype=torch.float16)
    tensors = {n: torch.randn((12, 2, 16, 16), dtype=torch.float16) + 5 for n in names}
    return SimpleNamespace(
        kv_cache_config=KVCacheConfig(
            num_blocks=12, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(names, spec)]
        ),
        compilation_config=SimpleNamespace(
            static_forward_context={n: SimpleNamespace(kv_cache=t) for n, t in tensors.items()}
        ),
        tensors=tensors,
    )


def test_same_bytes_as_vllms_cpu_zeroing() -> None:
    ours, theirs = _runner(0), _runner(0)
    ids = [0, 3, 11, 7]
    CPUModelRunner._zero_block_ids(theirs, ids)
    zeroer = CpuBlockZeroer.for_runner(ours)
    assert zeroer is not None
    zeroer(ids)
    for name in ours.tensors:
        assert torch.equal(ours.tensors[name], theirs.tensors[name])
        assert torch.count_nonzero(ours.tensors[name][[1, 2, 4]]) > 0  # other blocks untouched


def test_out_of_range_block_is_refused() -> None:
    runner = _runner(1)
    zeroer = CpuBlockZeroer.for_runner(runner)
    assert zeroer is not None
    with pytest.raises(IndexError):
        zeroer([12])
    with pytest.raises(IndexError):
        zeroer([-1])


def test_non_contiguous_falls_back_to_vllm() -> None:
    runner = _runner(2)
    ctx = runner.compilation_config.static_forward_context
    ctx["l0"].kv_cache = ctx["l0"].kv_cache.transpose(1, 2)
    assert CpuBlockZeroer.for_runner(runner) is None
    calls: list[list[int]] = []
    runner._zero_block_ids = calls.append
    _force_zeroing(runner)
    runner._zero_block_ids([1])
    assert calls == [[1]] and runner.pccguard_zeroed_blocks == 1


def test_immediate_scrub_through_collective_rpc(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    engine = make_engine(tiny_model)
    add(engine, request("A", list(range(300, 332)), max_tokens=2, salt=salt_for(engine, "a")))
    run_until_idle(engine)
    worker = engine.model_executor.worker
    held = [b for b in range(40) if worker.block_values(b) & {300.0}]
    assert held
    assert engine.model_executor.collective_rpc("pccguard_scrub_blocks", args=(held,)) == [len(held)]
    assert all(worker.block_values(b) == {0.0} for b in held)
    assert engine.model_executor.collective_rpc("pccguard_zeroed_blocks")[0] >= len(held)
