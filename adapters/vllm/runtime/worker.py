"""The worker side of ``scrub_freed_kv`` (``--worker-extension-cls``).

vLLM workers already zero the blocks listed in ``new_block_ids_to_zero`` at
the start of a step: the CPU runner directly, the GPU runner through its
Triton ``KVBlockZeroer`` -- which it builds only for hybrid (Mamba or
mixed-precision) models. ``init_worker_extension`` makes sure the zeroer
exists for every model, so the channel works on every worker, and counts
what it zeroes. ``pccguard_scrub_blocks`` zeroes on demand via
``collective_rpc``.
"""

from __future__ import annotations

import ctypes
from typing import Any

from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement.audit import AuditKind


class CpuBlockZeroer:
    """Zero whole blocks of contiguous CPU KV tensors with one ``memset`` per block and layer.

    vLLM's CPU layout puts blocks on dim 0 (``[num_blocks, heads, block, 2*head]``),
    so a block is one contiguous byte range. This is the same work as vLLM's
    ``CPUModelRunner._zero_block_ids`` (a ``zero_()`` per block view) without a
    tensor view per block, which roughly halves the cost for scattered blocks.
    Any tensor that is not a contiguous CPU tensor disables it (the caller then
    uses vLLM's routine).
    """

    def __init__(self, tensors: list[Any]) -> None:
        self.tensors = tensors
        self.spans = [
            (t.data_ptr(), t.stride(0) * t.element_size(), t[0].numel() * t.element_size(), int(t.shape[0]))
            for t in tensors
        ]

    @classmethod
    def for_runner(cls, runner: Any) -> CpuBlockZeroer | None:
        from vllm.v1.kv_cache_interface import FullAttentionSpec

        try:
            groups = runner.kv_cache_config.kv_cache_groups
            context = runner.compilation_config.static_forward_context
        except AttributeError:
            return None
        tensors: dict[int, Any] = {}
        for group in groups:
            if not isinstance(group.kv_cache_spec, FullAttentionSpec):
                continue
            for name in group.layer_names:
                kv = getattr(context.get(name), "kv_cache", None)
                if kv is None or not hasattr(kv, "data_ptr"):
                    continue
                if kv.device.type != "cpu" or not kv.is_contiguous():
                    return None
                tensors.setdefault(kv.data_ptr(), kv)
        return cls(list(tensors.values())) if tensors else None

    def valid(self) -> bool:
        return all(t.data_ptr() == span[0] for t, span in zip(self.tensors, self.spans, strict=True))

    def __call__(self, block_ids: list[int]) -> None:
        ids = [int(i) for i in block_ids]
        for base, stride, nbytes, count in self.spans:
            for block_id in ids:
                if not 0 <= block_id < count:
                    raise IndexError(f"block id {block_id} outside the KV cache (0..{count - 1})")
                ctypes.memset(base + block_id * stride, 0, nbytes)


def _force_zeroing(runner: Any) -> None:
    """Wrap this runner's ``_zero_block_ids``: build the GPU zeroer on first use, take the CPU fast path, count."""
    if getattr(runner, "_pccguard_zeroing", False) or not hasattr(runner, "_zero_block_ids"):
        return
    zero = runner._zero_block_ids
    cpu: list[CpuBlockZeroer | None] = []

    def zero_block_ids(block_ids: list[int]) -> None:
        if hasattr(runner, "_init_kv_zero_meta") and not hasattr(runner, "_kv_block_zeroer"):
            runner._init_kv_zero_meta()  # GPU: vLLM builds it only for hybrid models
        if not cpu or (cpu[0] is not None and not cpu[0].valid()):
            cpu[:] = [CpuBlockZeroer.for_runner(runner)]
        if cpu[0] is not None:
            cpu[0](block_ids)
        else:
            zero(block_ids)
        runner.pccguard_zeroed_blocks = getattr(runner, "pccguard_zeroed_blocks", 0) + len(block_ids)

    runner._zero_block_ids = zero_block_ids
    runner._pccguard_zeroing = True


class PccguardWorkerExtension:
    """Mixed into vLLM's worker class by ``WorkerWrapperBase`` (method names must not clash with the worker)."""

    def init_worker_extension(self) -> None:
        runner = getattr(self, "model_runner", None)
        if runner is not None:
            _force_zeroing(runner)
            audit_log().emit(AuditKind.MITIGATION_INSTALLED, mitigation="scrub_freed_kv", reason="worker")

    def pccguard_scrub_blocks(self, block_ids: list[int]) -> int:
        """Zero these blocks now (after a reset or an expiry, without waiting for a step)."""
        runner = self.model_runner  # type: ignore[attr-defined]
        _force_zeroing(runner)
        ids = sorted({int(i) for i in block_ids})
        if ids:
            runner._zero_block_ids(ids)
            audit_log().emit(
                AuditKind.KV_SCRUBBED,
                mitigation="scrub_freed_kv",
                count=len(ids),
                unit="blocks",
                reason="rpc",
            )
        return len(ids)

    def pccguard_zeroed_blocks(self) -> int:
        return int(getattr(self.model_runner, "pccguard_zeroed_blocks", 0))  # type: ignore[attr-defined]


WORKER_EXTENSION_QUALNAME = f"{__name__}.PccguardWorkerExtension"
