"""The worker side of vLLM's start-time self-tests: canaries in the real KV tensors, on every rank.

The engine core sends these functions to every worker with
``collective_rpc`` (vLLM runs a module-level callable with the worker as its
first argument), so they run where the KV cache lives: on the worker's own
device, in the worker's own process, one call per tensor- and pipeline-
parallel rank. They touch only the blocks the engine core names, and only
while no request runs (the self-tests run before the engine serves).

The KV tensors are found the way vLLM's own zeroing finds them (the full-
attention groups of the runner's ``kv_cache_config`` and the layers'
``kv_cache`` in the forward context), so a check covers exactly what the
zeroing is meant to cover. A block is located on the dimension whose size is
the cache's block count (dim 0 in the CPU layout, dim 1 in the GPU layouts
that put K and V first), or on a dimension that holds a whole number of kernel
blocks per block.
"""

from __future__ import annotations

from typing import Any

import torch

#: What one rank saw: per KV tensor, the ids of the named blocks holding the canary and holding anything.
RankState = dict[str, Any]


def _runner(worker: Any) -> Any:
    runner = getattr(worker, "model_runner", None)
    if runner is None:
        raise RuntimeError("this worker has no model runner")
    return runner


def kv_tensors(runner: Any) -> list[tuple[str, torch.Tensor]]:
    """Every full-attention KV tensor of this runner, once each, with the layer that owns it."""
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    seen: set[int] = set()
    out: list[tuple[str, torch.Tensor]] = []
    context = runner.compilation_config.static_forward_context
    for group in runner.kv_cache_config.kv_cache_groups:
        if not isinstance(group.kv_cache_spec, FullAttentionSpec):
            continue
        for name in group.layer_names:
            kv = getattr(context.get(name), "kv_cache", None)
            if isinstance(kv, list):  # older layouts keep one tensor per virtual engine
                kv = kv[0] if kv else None
            if not isinstance(kv, torch.Tensor) or kv.data_ptr() in seen:
                continue
            seen.add(kv.data_ptr())
            out.append((name, kv))
    return out


def _block_view(kv: torch.Tensor, num_blocks: int, block_id: int) -> torch.Tensor:
    """The part of ``kv`` that holds ``block_id`` (a view, so writes reach the cache)."""
    for dim in range(min(kv.dim(), 2)):
        if kv.shape[dim] == num_blocks:
            return kv.select(dim, block_id)
    for dim in range(min(kv.dim(), 2)):
        size = int(kv.shape[dim])
        if size > num_blocks and size % num_blocks == 0:
            per = size // num_blocks  # kernel blocks smaller than the manager's block
            return kv.narrow(dim, block_id * per, per)
    raise RuntimeError(f"no dimension of a KV tensor of shape {tuple(kv.shape)} holds {num_blocks} blocks")


def _pattern(view: torch.Tensor, seed: int, index: int) -> torch.Tensor:
    """A per-start, per-tensor, per-block canary: random values in [0.5, 1.5), never zero in any KV dtype."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed((seed * 1_000_003 + index) % (2**63))
    values = torch.rand(view.shape, generator=gen, dtype=torch.float32) + 0.5
    return values.to(device=view.device, dtype=view.dtype)


def write_canary(worker: Any, block_ids: list[int], seed: int) -> int:
    """Write the canary into these blocks of every KV tensor; the number of tensors written."""
    runner = _runner(worker)
    num_blocks = int(runner.kv_cache_config.num_blocks)
    tensors = kv_tensors(runner)
    for t_index, (_, kv) in enumerate(tensors):
        for block_id in block_ids:
            view = _block_view(kv, num_blocks, int(block_id))
            view.copy_(_pattern(view, seed, t_index * num_blocks + int(block_id)))
    _sync(runner)
    return len(tensors)


def read_state(worker: Any, block_ids: list[int], seed: int) -> RankState:
    """Which of these blocks hold the canary, and which hold anything at all, per KV tensor."""
    runner = _runner(worker)
    num_blocks = int(runner.kv_cache_config.num_blocks)
    _sync(runner)
    tensors = kv_tensors(runner)
    canary: list[list[int]] = []
    nonzero: list[list[int]] = []
    device = "none"
    for t_index, (_, kv) in enumerate(tensors):
        device = str(kv.device)
        has_canary, has_data = [], []
        for block_id in block_ids:
            view = _block_view(kv, num_blocks, int(block_id))
            if torch.equal(view, _pattern(view, seed, t_index * num_blocks + int(block_id))):
                has_canary.append(int(block_id))
            if bool(torch.count_nonzero(view).item()):
                has_data.append(int(block_id))
        canary.append(has_canary)
        nonzero.append(has_data)
    return {
        "layers": [name for name, _ in tensors],
        "canary": canary,
        "nonzero": nonzero,
        "device": device,
        "rank": _rank(worker),
    }


def holding_blocks(worker: Any, block_ids: list[int]) -> list[int]:
    """Those of these blocks holding a non-zero byte in any KV tensor of this rank (residue sampling).

    One device-to-host copy per tensor (a row of booleans), not one per block:
    the sampler runs between steps of a serving engine.
    """
    runner = _runner(worker)
    num_blocks = int(runner.kv_cache_config.num_blocks)
    ids = [int(i) for i in block_ids]
    if not ids:
        return []
    held = torch.zeros(len(ids), dtype=torch.bool)
    for _, kv in kv_tensors(runner):
        row = torch.stack([_block_view(kv, num_blocks, i).ne(0).any() for i in ids])
        held |= row.cpu()
    return [i for i, h in zip(ids, held.tolist(), strict=True) if h]


def run_engine_zeroing(worker: Any, block_ids: list[int]) -> None:
    """Zero these blocks the way a step does: the runner's ``_zero_block_ids`` (``new_block_ids_to_zero``)."""
    runner = _runner(worker)
    if block_ids:
        runner._zero_block_ids(list(block_ids))
    _sync(runner)


def _sync(runner: Any) -> None:
    sync = getattr(runner, "_sync_device", None)
    if callable(sync):
        sync()


def _rank(worker: Any) -> int:
    for attr in ("rank", "local_rank"):
        value = getattr(worker, attr, None)
        if isinstance(value, int):
            return value
    return 0
