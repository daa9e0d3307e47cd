"""A CPU test executor for vLLM's real ``EngineCore`` (the one fake in these tests: there is no GPU here).

``CpuTestExecutor`` stands in for the GPU executor. Its single worker
allocates real paged KV tensors in the CPU attention layout
``[num_blocks, num_kv_heads, block_size, 2 * head_size]`` and, instead of
running a model, writes a recognizable value into every slot it computes: the
token id at that position (the canary). It applies ``new_block_ids_to_zero``
at the start of each step exactly where vLLM's model runner does, with vLLM's
own ``CPUModelRunner._zero_block_ids``. Everything else -- ``EngineCore``,
``Scheduler``, ``KVCacheManager``, ``BlockPool``, request hashing -- is vLLM's
code, configured through ``EngineArgs.create_engine_config`` like ``vllm serve``.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import torch
from vllm.v1.engine.core import EngineCore
from vllm.v1.kv_cache_interface import FullAttentionSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.worker.cpu_model_runner import CPUModelRunner

from pccguard.adapters.vllm.runtime.worker import PccguardWorkerExtension
from pccguard.enclave_runtime.vllm_executor.executor import NO_OPS
from pccguard.enclave_runtime.vllm_executor.inprocess import InProcessWorkerExecutor
from tests.cpu_vllm import core_request, start_engine, tenant_token

NUM_LAYERS = 2
NUM_KV_HEADS = 2
HEAD_SIZE = 16
BLOCK_SIZE = 16
NUM_BLOCKS = 40
DECODE_TOKEN = 7


class CpuTestWorker(PccguardWorkerExtension):
    """The worker: real KV tensors, canary writes instead of a forward pass."""

    def __init__(self) -> None:
        self.kv_caches: dict[str, torch.Tensor] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.model_runner = SimpleNamespace()

    # --- what EngineCore calls during initialization
    def get_kv_cache_spec(self) -> dict[str, FullAttentionSpec]:
        spec = FullAttentionSpec(
            block_size=BLOCK_SIZE, num_kv_heads=NUM_KV_HEADS, head_size=HEAD_SIZE, dtype=torch.float32
        )
        return {f"layers.{i}.attn": spec for i in range(NUM_LAYERS)}

    def get_supported_kv_cache_layouts(self) -> list[str]:
        return ["NHD"]

    def set_kv_cache_layout(self, *args: Any, **kwargs: Any) -> None:
        return None

    def determine_available_memory(self) -> int:
        page = BLOCK_SIZE * NUM_KV_HEADS * HEAD_SIZE * 2 * 4
        return NUM_BLOCKS * page * NUM_LAYERS

    def initialize_from_config(self, kv_cache_configs: Any) -> None:
        config = kv_cache_configs[0] if isinstance(kv_cache_configs, list) else kv_cache_configs
        num_blocks = config.num_blocks
        forward_context: dict[str, Any] = {}
        for group in config.kv_cache_groups:
            for name in group.layer_names:
                tensor = torch.zeros(
                    (num_blocks, NUM_KV_HEADS, BLOCK_SIZE, 2 * HEAD_SIZE), dtype=torch.float32
                )
                self.kv_caches[name] = tensor
                forward_context[name] = SimpleNamespace(kv_cache=tensor)
        runner = self.model_runner
        runner.kv_cache_config = config
        runner.compilation_config = SimpleNamespace(static_forward_context=forward_context)
        # vLLM's own CPU zeroing routine, bound to this runner.
        runner._zero_block_ids = lambda ids: CPUModelRunner._zero_block_ids(runner, ids)
        self.init_worker_extension()

    def compile_or_warm_up_model(self) -> None:
        return None

    def check_health(self) -> None:
        return None

    def get_supported_tasks(self) -> tuple[str, ...]:
        return ("generate",)

    # --- one step
    def execute_model(self, so: Any) -> ModelRunnerOutput:
        for req_id in so.finished_req_ids:
            self.requests.pop(req_id, None)
        if so.new_block_ids_to_zero:  # where GPUModelRunner._update_states zeroes
            self.model_runner._zero_block_ids(so.new_block_ids_to_zero)
        for new in so.scheduled_new_reqs:
            self.requests[new.req_id] = {
                "tokens": list(new.prompt_token_ids),
                "blocks": list(new.block_ids[0]),
            }
        cached = so.scheduled_cached_reqs
        for i, req_id in enumerate(cached.req_ids):
            state = self.requests[req_id]
            blocks = cached.new_block_ids[i]
            if req_id in cached.resumed_req_ids:
                state["blocks"] = list(blocks[0]) if blocks else []
            elif blocks:
                state["blocks"] += list(blocks[0])
        req_ids = list(so.num_scheduled_tokens)
        sampled: list[list[int]] = []
        computed = {r.req_id: r.num_computed_tokens for r in so.scheduled_new_reqs}
        computed.update(dict(zip(cached.req_ids, cached.num_computed_tokens, strict=True)))
        for req_id in req_ids:
            state = self.requests[req_id]
            start = computed[req_id]
            count = so.num_scheduled_tokens[req_id]
            for pos in range(start, start + count):
                token = state["tokens"][pos]
                block = state["blocks"][pos // BLOCK_SIZE]
                for kv in self.kv_caches.values():
                    kv[block, :, pos % BLOCK_SIZE, :] = float(token)
            if start + count >= len(state["tokens"]):
                state["tokens"].append(DECODE_TOKEN)
                sampled.append([DECODE_TOKEN])
            else:
                sampled.append([])
        return ModelRunnerOutput(
            req_ids=req_ids, req_id_to_index={r: i for i, r in enumerate(req_ids)}, sampled_token_ids=sampled
        )

    # --- faults and inspection for tests
    def plant_residue(self, seed: int) -> int:
        """Data in every block but the null one, as a free path that skipped the scrub leaves it (idle engine)."""
        from pccguard.adapters.vllm.runtime.selftest_worker import write_canary

        blocks = int(self.model_runner.kv_cache_config.num_blocks)
        write_canary(self, list(range(1, blocks)), seed)
        return blocks - 1

    def block_values(self, block_id: int) -> set[float]:
        values: set[float] = set()
        for kv in self.kv_caches.values():
            values |= set(torch.unique(kv[block_id]).tolist())
        return values


class CpuTestExecutor(InProcessWorkerExecutor):
    """The executor around :class:`CpuTestWorker` (pccguard's in-process executor base, as the enclave uses)."""

    no_ops = NO_OPS  # what vLLM's LLM and engine-core process send that has nothing to do here

    def make_worker(self) -> CpuTestWorker:
        return CpuTestWorker()


#: The engine arguments of every test engine (``EngineArgs`` keywords, also ``LLM``'s).
ENGINE_ARGS: dict[str, Any] = dict(
    enable_prefix_caching=True,
    max_num_batched_tokens=64,
    max_num_seqs=8,
    max_model_len=512,
    num_gpu_blocks_override=NUM_BLOCKS,
    block_size=BLOCK_SIZE,
    distributed_executor_backend=CpuTestExecutor,
)


def make_engine(model: Any, **overrides: Any) -> EngineCore:
    """Build the configuration as ``vllm serve`` would (plugin hooks included) and start a real EngineCore."""
    return start_engine(model, **{**ENGINE_ARGS, **overrides})


def request(
    req_id: str, tokens: list[int], *, salt: str | None = None, max_tokens: int = 2, **kw: Any
) -> Any:
    return core_request(req_id, tokens, max_tokens=max_tokens, salt=salt, **kw)


def salt_for(engine: EngineCore, tenant: str) -> str:
    """What tenant ``tenant``'s requests carry: the boundary's token with the plugin, the name itself without."""
    if getattr(engine.scheduler, "pccguard_salt_gate", None) is not None:
        return tenant_token(tenant)
    return tenant


def add(engine: EngineCore, req: Any) -> Any:
    """Add a request through the engine's own preprocessing (``preprocess_add_request``)."""
    internal, wave = engine.preprocess_add_request(req)
    engine.add_request(internal, wave)
    return internal


def run_until_idle(engine: EngineCore, max_steps: int = 200) -> int:
    steps = 0
    while engine.scheduler.has_requests() and steps < max_steps:
        engine.step()
        steps += 1
    return steps


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)
