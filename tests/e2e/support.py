"""Drive vLLM's real ``EngineCore`` with the enclave executor, and the enclave runtime's reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vllm.v1.engine.core import EngineCore

from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.plan import PartitionPlan
from pccguard.enclave_runtime.vllm_executor.executor import EnclaveExecutor
from tests.cpu_vllm import core_request, start_engine, tenant_token

BLOCK_SIZE = 16
NUM_BLOCKS = 48


def make_engine(model: Path, **overrides: Any) -> EngineCore:
    """The configuration ``vllm serve`` would build, with the enclave executor unless overridden.

    ``distributed_executor_backend=None`` leaves the choice to vLLM and pccguard's plugin.
    """
    args: dict[str, Any] = dict(
        enable_prefix_caching=True,
        max_num_batched_tokens=32,
        max_num_seqs=8,
        max_model_len=256,
        num_gpu_blocks_override=NUM_BLOCKS,
        block_size=BLOCK_SIZE,
        distributed_executor_backend=EnclaveExecutor,
    )
    return start_engine(model, **{**args, **overrides})


def request(req_id: str, tokens: list[int], *, max_tokens: int, tenant: str = "e2e") -> Any:
    """A request of ``tenant``, carrying the salt token pccguard's tenant boundary would mint for it."""
    return core_request(req_id, tokens, max_tokens=max_tokens, salt=tenant_token(tenant))


def generate(engine: EngineCore, reqs: list[Any], max_steps: int = 400) -> dict[str, list[int]]:
    """Add every request, step until idle, collect the new tokens per request id."""
    out: dict[str, list[int]] = {r.request_id: [] for r in reqs}
    for r in reqs:
        internal, wave = engine.preprocess_add_request(r)
        engine.add_request(internal, wave)
    steps = 0
    while engine.scheduler.has_requests() and steps < max_steps:
        outputs, _ = engine.step()
        for batch in outputs.values():
            for o in batch.outputs:
                out[_external(o.request_id, out)] += list(o.new_token_ids)
        steps += 1
    assert not engine.scheduler.has_requests(), "engine did not finish within the step budget"
    return out


def _external(internal_id: str, known: dict[str, list[int]]) -> str:
    """vLLM may suffix request ids internally; map back to the id the test used."""
    if internal_id in known:
        return internal_id
    return next(k for k in known if internal_id.startswith(k))


def reference(model: Path, plan: PartitionPlan, prompts: list[list[int]], max_new: int) -> list[list[int]]:
    """Greedy tokens of the enclave runtime's own executor (one request at a time, contiguous KV)."""
    with HybridExecutor.start(model, plan=plan, device="cpu", timeout_s=120) as ex:
        return [ex.generate(p, max_new).tokens for p in prompts]
