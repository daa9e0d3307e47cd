"""``EnclaveExecutor``: a vLLM ``Executor`` whose model and paged KV cache run in the enclave.

vLLM keeps what it is good at and what is not secret by itself -- the
scheduler, the KV cache manager and block pool, prefix hashing (with
pccguard's tenant salts), detokenization -- and the executor turns each
``SchedulerOutput`` into one ``step`` message to the enclave: the token ids
of the positions scheduled in this step, their start positions and block
tables, the blocks to zero first. Keys and values exist only in the enclave
process, indexed by vLLM's own block ids.

The pccguard plugin selects it when a rule requires ``hybrid_executor``
(private model parts on an untrusted accelerator); it can also be named by
hand with ``--distributed-executor-backend
pccguard.enclave_runtime.vllm_executor.executor.EnclaveExecutor``. The plan
and privacy options come from :mod:`.settings`, the KV budget from
``--kv-cache-memory-bytes`` (or ``num_gpu_blocks_override``).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
from vllm.v1.executor.abstract import Executor
from vllm.v1.kv_cache_interface import FullAttentionSpec
from vllm.v1.outputs import ModelRunnerOutput

from pccguard.enclave_runtime.model import LlamaSpec
from pccguard.enclave_runtime.vllm_executor.client import PagedEnclave
from pccguard.enclave_runtime.vllm_executor.settings import settings_for

#: Under vLLM's logger, so the enclave's start-up lines appear in the serve log.
log = logging.getLogger("vllm.pccguard.enclave")

#: KV budget when vLLM gives none: small, because the cache lives in the enclave's memory.
DEFAULT_KV_BYTES = 64 << 20
#: RPCs EngineCore may send that have nothing to do here (no device, no LoRA in vLLM, no multimodal).
NO_OPS = frozenset(
    {
        "set_kv_cache_layout",
        "compile_or_warm_up_model",
        "check_health",
        "reset_mm_cache",
        "reset_encoder_cache",
        "synchronize_device",
        "update_max_model_len",
        "shutdown",
        "sleep",
        "wake_up",
        "execute_dummy_batch",
    }
)


def _step_seed(view: RequestView) -> int | None:
    """A per-position seed: a seeded request stays reproducible without repeating one draw."""
    return None if view.seed is None else int(view.seed) * 1_000_003 + len(view.tokens)


@dataclass
class RequestView:
    """What the host knows of a request anyway: its tokens, its blocks, how to sample it."""

    tokens: list[int]
    blocks: list[int]
    temperature: float = 0.0
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EnclaveWorker:
    """The worker methods EngineCore reaches through ``collective_rpc``, backed by a :class:`PagedEnclave`."""

    def __init__(self, vllm_config: Any) -> None:
        self.vllm_config = vllm_config
        model_config = vllm_config.model_config
        self.model_dir = str(model_config.model)
        self.spec = LlamaSpec.from_config(model_config.hf_config.to_dict())
        self.block_size = int(vllm_config.cache_config.block_size)
        self.layer_names = [f"model.layers.{i}.self_attn.attn" for i in range(self.spec.n_layers)]
        self.settings = settings_for(vllm_config.additional_config)
        self.enclave = PagedEnclave(
            self.model_dir,
            plan=self.settings.partition_plan(),
            private_base=self.settings.private_base,
            protect_prompts=self.settings.protect_prompts,
            timeout_s=float(os.environ.get("PCCGUARD_ENCLAVE_TIMEOUT_S", "120")),
            threads=int(os.environ.get("PCCGUARD_ENCLAVE_THREADS", "1")),
            debug_inspect=os.environ.get("PCCGUARD_ENCLAVE_DEBUG") == "1",
        )
        report = self.enclave.verify()  # the host refuses an enclave whose measurement it cannot reproduce
        log.info(
            "pccguard enclave executor: plan %s, private base %s, attested measurement %s",
            self.enclave.plan.name,
            self.settings.private_base,
            report.measurement[:16],
        )
        self.requests: dict[str, RequestView] = {}
        self.zeroed_blocks = 0

    # ------------------------------------------------------------------ initialization
    def page_bytes(self) -> int:
        return self.block_size * self.spec.n_kv_heads * self.spec.head_dim * 2 * 4

    def get_kv_cache_spec(self) -> dict[str, FullAttentionSpec]:
        spec = FullAttentionSpec(
            block_size=self.block_size,
            num_kv_heads=self.spec.n_kv_heads,
            head_size=self.spec.head_dim,
            dtype=torch.float32,
        )
        return dict.fromkeys(self.layer_names, spec)

    def get_supported_kv_cache_layouts(self) -> list[str]:
        return ["NHD"]

    def determine_available_memory(self) -> int:
        configured = getattr(self.vllm_config.cache_config, "kv_cache_memory_bytes", None)
        return int(configured or DEFAULT_KV_BYTES)

    def initialize_from_config(self, kv_cache_configs: Any) -> None:
        config = kv_cache_configs[0] if isinstance(kv_cache_configs, list) else kv_cache_configs
        for group in config.kv_cache_groups:
            if not isinstance(group.kv_cache_spec, FullAttentionSpec):
                raise ValueError("the enclave executor supports full attention only")
        nbytes = self.enclave.init_kv(int(config.num_blocks), self.block_size)
        log.info(
            "enclave KV cache: %d blocks of %d tokens, %d bytes", config.num_blocks, self.block_size, nbytes
        )

    def get_supported_tasks(self) -> tuple[str, ...]:
        return ("generate",)

    def get_simple_cpu_offload_num_cpu_blocks(self) -> None:
        return None

    def get_kv_connector_handshake_metadata(self) -> None:
        return None

    def take_draft_token_ids(self) -> None:
        return None

    def supports_draft_weight_updates(self) -> bool:
        return False

    # ------------------------------------------------------------------ pccguard's scrub channel
    def pccguard_scrub_blocks(self, block_ids: list[int]) -> int:
        """Zero these blocks in the enclave now (``scrub_freed_kv`` after a reset or an expiry)."""
        n = self.enclave.zero_blocks(sorted({int(i) for i in block_ids}))
        self.zeroed_blocks += n
        return n

    def pccguard_zeroed_blocks(self) -> int:
        return self.zeroed_blocks

    # ------------------------------------------------------------------ one step
    def _admit(self, so: Any) -> None:
        for req_id in so.finished_req_ids:
            self.requests.pop(req_id, None)
        for new in so.scheduled_new_reqs:
            params = new.sampling_params
            self.requests[new.req_id] = RequestView(
                tokens=list(new.prompt_token_ids or []),
                blocks=list(new.block_ids[0]),
                temperature=float(getattr(params, "temperature", 0.0) or 0.0),
                seed=getattr(params, "seed", None),
            )
        cached = so.scheduled_cached_reqs
        for i, req_id in enumerate(cached.req_ids):
            view = self.requests[req_id]
            blocks = cached.new_block_ids[i]
            if req_id in cached.resumed_req_ids:
                view.blocks = list(blocks[0]) if blocks else []
                resumed_tokens = cached.all_token_ids.get(req_id)
                if resumed_tokens:
                    view.tokens = list(resumed_tokens)
            elif blocks:
                view.blocks += list(blocks[0])

    def execute_model(self, so: Any) -> ModelRunnerOutput:
        self._admit(so)
        zero = list(so.new_block_ids_to_zero or [])
        self.zeroed_blocks += len(set(zero))
        computed = {r.req_id: r.num_computed_tokens for r in so.scheduled_new_reqs}
        cached = so.scheduled_cached_reqs
        computed.update(dict(zip(cached.req_ids, cached.num_computed_tokens, strict=True)))
        req_ids = list(so.num_scheduled_tokens)
        reqs: list[dict[str, Any]] = []
        ids: list[int] = []
        for req_id in req_ids:
            view = self.requests[req_id]
            start, count = int(computed[req_id]), int(so.num_scheduled_tokens[req_id])
            if start + count > len(view.tokens):
                raise RuntimeError(f"request {req_id}: scheduled past its known tokens")
            sample = start + count >= len(view.tokens)
            reqs.append(
                {"n": count, "start": start, "blocks": view.blocks, "sample": sample}
                | (
                    {"temperature": view.temperature, "seed": _step_seed(view)}
                    if sample and view.temperature
                    else {}
                )
            )
            ids += view.tokens[start : start + count]
        sampled_flat = self.enclave.step(reqs, ids, zero) if (reqs or zero) else []
        sampled: list[list[int]] = []
        it = iter(sampled_flat)
        for req_id, r in zip(req_ids, reqs, strict=True):
            if r["sample"]:
                token = next(it)
                self.requests[req_id].tokens.append(token)
                sampled.append([token])
            else:
                sampled.append([])
        return ModelRunnerOutput(
            req_ids=req_ids, req_id_to_index={r: i for i, r in enumerate(req_ids)}, sampled_token_ids=sampled
        )

    def close(self) -> None:
        self.enclave.close()


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class EnclaveExecutor(Executor):
    """One in-process worker; the model runs in the enclave process it starts."""

    uses_ray = False
    supports_pp = False

    def _init_executor(self) -> None:
        self.worker = EnclaveWorker(self.vllm_config)

    def collective_rpc(  # type: ignore[override]
        self,
        method: Any,
        timeout: float | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        non_block: bool = False,
        **_: Any,
    ) -> Any:
        if callable(method):
            result = method(self.worker, *args, **(kwargs or {}))
        elif hasattr(self.worker, method):
            result = getattr(self.worker, method)(*args, **(kwargs or {}))
        elif method in NO_OPS:
            result = None
        else:
            raise NotImplementedError(f"the enclave executor does not implement {method!r}")
        return _done([result]) if non_block else [result]

    def execute_model(self, scheduler_output: Any, non_block: bool = False) -> Any:  # type: ignore[override]
        out = self.worker.execute_model(scheduler_output)
        return _done(out) if non_block else out

    def sample_tokens(self, grammar_output: Any, non_block: bool = False) -> Any:  # type: ignore[override]
        return _done(None) if non_block else None

    def take_draft_token_ids(self) -> Any:
        return None

    def check_health(self) -> None:
        if self.worker.enclave.closed:
            raise RuntimeError("the enclave is closed")
        self.worker.enclave.kv_stats()  # a round trip: raises EnclaveLost when the enclave is gone

    def compile_or_warm_up_model(self) -> None:  # type: ignore[override]
        return None

    def shutdown(self) -> None:
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.close()
