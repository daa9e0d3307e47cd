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

from typing import Any

from pccguard.adapters.vllm.runtime.audit import audit_log

from pccguard.audit import AuditKind


def _force_zeroing(runner: Any) -> None:
    """Wrap this runner's ``_zero_block_ids`` so that the zeroer is built on first use and zeroing is counted."""
    if getattr(runner, "_pccguard_zeroing", False) or not hasattr(runner, "_zero_block_ids"):
        return
    zero = runner._zero_block_ids

    def zero_block_ids(block_ids: list[int]) -> None:
        if hasattr(runner, "_init_kv_zero_meta") and not hasattr(runner, "_kv_block_zeroer"):
            runner._init_kv_zero_meta()  # GPU: vLLM builds it only for hybrid models
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
