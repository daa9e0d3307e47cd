"""``EnclaveExecutor``: a vLLM ``Executor`` whose model and paged KV cache run in the enclave.

vLLM keeps what it is good at and what is not secret by itself -- the
scheduler, the KV cache manager and block pool, prefix hashing (with
pccguard's tenant salts), detokenization -- and the executor turns each
``SchedulerOutput`` into one ``step`` message to the enclave: the token ids
of the positions scheduled in this step, their start positions and block
tables, the blocks to zero first. Keys and values exist only in the enclave
process, indexed by vLLM's own block ids.

The logits never leave the enclave either: it samples with vLLM's semantics
(:mod:`.sampling`) from each request's parameters, sent with its first sample,
and returns the tokens and, when asked, their logprobs, which the executor
hands back as vLLM's ``LogprobsLists``. Structured outputs work as in vLLM:
the engine core's grammar backend computes each step's token bitmask from the
tokens it already has, and the enclave applies it before sampling. What the
enclave cannot honour (prompt logprobs, custom logits processors) is refused at
admission by ``pccguard.adapters.vllm.runtime.enclave_requests``.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from vllm.v1.kv_cache_interface import FullAttentionSpec
from vllm.v1.outputs import LogprobsLists, ModelRunnerOutput

from pccguard.enclave_runtime.model import LlamaSpec
from pccguard.enclave_runtime.vllm_executor.client import PagedEnclave
from pccguard.enclave_runtime.vllm_executor.inprocess import InProcessWorkerExecutor
from pccguard.enclave_runtime.vllm_executor.sampling_params import RequestSampling, unsupported
from pccguard.enclave_runtime.vllm_executor.sampling_wire import Admission, StepResult
from pccguard.enclave_runtime.vllm_executor.settings import settings_for

#: Under vLLM's logger, so the enclave's start-up lines appear in the serve log.
log = logging.getLogger("vllm.pccguard.enclave")

#: KV budget when vLLM gives none: small, because the cache lives in the enclave's memory.
DEFAULT_KV_BYTES = 64 << 20
#: Enclave memory for blinding masks precomputed while idle (``PCCGUARD_ENCLAVE_MASK_POOL_MB``).
DEFAULT_MASK_POOL_MB = 128.0
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


def env_number(name: str, default: float, *, minimum: float) -> float:
    """A numeric tuning variable; a bad value stops the start with a message naming the variable."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise ValueError(f"{name} must be a number >= {minimum:g}, not {raw!r}")
    return value


@dataclass
class RequestView:
    """What the host knows of a request anyway: its tokens, its blocks, how to sample it."""

    tokens: list[int]
    blocks: list[int]
    #: ``tokens[:prompt_len]`` is the prompt, the rest what the enclave sampled (penalties tell them apart).
    prompt_len: int = 0
    sampling: RequestSampling = field(default_factory=RequestSampling)
    #: Whether the enclave holds this request's sampler state (sent with its first sample, wiped at finish).
    admitted: bool = False
    #: A structured-output request: it never samples without its grammar bitmask.
    structured: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedStep:
    """One scheduler step turned into the enclave's ``step`` message, before it is sent."""

    req_ids: list[str]
    zero: list[int]
    finished: list[str]
    reqs: list[dict[str, Any]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    admit: list[Admission] = field(default_factory=list)
    #: Indices, among the step's sampling requests, of the structured-output ones.
    structured: list[int] = field(default_factory=list)


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
            timeout_s=env_number("PCCGUARD_ENCLAVE_TIMEOUT_S", 120.0, minimum=1.0),
            threads=int(env_number("PCCGUARD_ENCLAVE_THREADS", 1, minimum=1)),
            debug_inspect=os.environ.get("PCCGUARD_ENCLAVE_DEBUG") == "1",
            mask_pool_bytes=int(
                env_number("PCCGUARD_ENCLAVE_MASK_POOL_MB", DEFAULT_MASK_POOL_MB, minimum=0) * 2**20
            ),
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
        #: A step waiting for its grammar bitmask (see :meth:`execute_model`).
        self.pending: PreparedStep | None = None

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
    def _admit(self, so: Any) -> list[str]:
        """Track this step's requests; return the finished ones whose sampler state the enclave must wipe."""
        finished: list[str] = []
        for req_id in so.finished_req_ids:
            gone = self.requests.pop(req_id, None)
            if gone is not None and gone.admitted:
                finished.append(req_id)
        model_config = self.vllm_config.model_config
        mode = str(getattr(model_config, "logprobs_mode", "raw_logprobs"))
        for new in so.scheduled_new_reqs:
            params = new.sampling_params
            refused = unsupported(params) + (
                [("logits_processors", "custom logits processors do not run in the enclave")]
                if getattr(model_config, "logits_processors", None)
                else []
            )
            for name, reason in refused:
                # Unreachable with pccguard's vLLM plugin: its admission checks refuse these requests first.
                log.error("request %s: %s is not applied: %s", new.req_id, name, reason)
            prompt = list(new.prompt_token_ids or [])
            self.requests[new.req_id] = RequestView(
                tokens=prompt,
                blocks=list(new.block_ids[0]),
                prompt_len=len(prompt),
                sampling=RequestSampling.from_params(params, vocab=self.spec.vocab, logprobs_mode=mode)
                if params is not None
                else RequestSampling(),
                structured=getattr(params, "structured_outputs", None) is not None,
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
        return finished

    def execute_model(self, so: Any) -> ModelRunnerOutput | None:
        """Run the step now, or, when a structured-output request samples in it, once its bitmask is known.

        vLLM's engine core computes the grammar bitmask while the model runs and
        hands it to ``sample_tokens`` when ``execute_model`` returns None. The
        enclave does forward and sampling in one message, so such a step waits
        for the bitmask; every other step runs here as before.
        """
        step = self._prepare(so)
        if step.structured:
            self.pending = step
            return None
        return self._run(step, {})

    def sample_tokens(self, grammar_output: Any) -> ModelRunnerOutput | None:
        """Run the step :meth:`execute_model` left waiting, under the grammar bitmask."""
        step, self.pending = self.pending, None
        if step is None:
            return None
        return self._run(step, self._grammar_rows(step, grammar_output))

    def _prepare(self, so: Any) -> PreparedStep:
        finished = self._admit(so)
        zero = list(so.new_block_ids_to_zero or [])
        self.zeroed_blocks += len(set(zero))
        computed = {r.req_id: r.num_computed_tokens for r in so.scheduled_new_reqs}
        cached = so.scheduled_cached_reqs
        computed.update(dict(zip(cached.req_ids, cached.num_computed_tokens, strict=True)))
        step = PreparedStep(req_ids=list(so.num_scheduled_tokens), zero=zero, finished=finished)
        sampling = 0
        for req_id in step.req_ids:
            view = self.requests[req_id]
            start, count = int(computed[req_id]), int(so.num_scheduled_tokens[req_id])
            if start + count > len(view.tokens):
                raise RuntimeError(f"request {req_id}: scheduled past its known tokens")
            sample = start + count >= len(view.tokens)
            item: dict[str, Any] = {"n": count, "start": start, "blocks": view.blocks, "sample": sample}
            if sample:
                item["key"] = req_id
                if view.structured:
                    step.structured.append(sampling)
                sampling += 1
                if not view.admitted:
                    prompt = view.tokens[: view.prompt_len] if view.sampling.needs_prompt else []
                    step.admit.append(
                        Admission(req_id, view.sampling, prompt, view.tokens[view.prompt_len :])
                    )
                    view.admitted = True
            step.reqs.append(item)
            step.ids += view.tokens[start : start + count]
        return step

    @staticmethod
    def _grammar_rows(step: PreparedStep, grammar_output: Any) -> dict[int, torch.Tensor]:
        """``{index among the step's sampling requests: bitmask row}`` from vLLM's ``GrammarOutput``.

        Every structured-output request that samples in this step must get
        exactly its row. A missing row or one for another request means the
        host's view and the scheduler's disagree: the step stops rather than
        sample a constrained request without its constraint.
        """
        rows: dict[int, torch.Tensor] = {}
        if grammar_output is not None:
            ids = list(grammar_output.structured_output_request_ids)
            bitmask = np.asarray(grammar_output.grammar_bitmask, dtype=np.int32)
            if not ids or bitmask.ndim != 2 or bitmask.shape[0] % len(ids):
                raise RuntimeError("grammar bitmask rows do not match its structured-output requests")
            stride = bitmask.shape[0] // len(ids)  # one row per request (no draft tokens are served here)
            sampling = [req_id for req_id, r in zip(step.req_ids, step.reqs, strict=True) if r["sample"]]
            index = {req_id: i for i, req_id in enumerate(sampling)}
            for j, req_id in enumerate(ids):
                if req_id not in index:
                    raise RuntimeError(
                        f"request {req_id}: grammar bitmask for a request that does not sample"
                    )
                rows[index[req_id]] = torch.from_numpy(bitmask[j * stride].copy())
        if sorted(rows) != sorted(step.structured):
            raise RuntimeError("a structured-output request would sample without its grammar bitmask")
        return rows

    def _run(self, step: PreparedStep, grammar: dict[int, torch.Tensor]) -> ModelRunnerOutput:
        reqs = step.reqs
        result = (
            self.enclave.step(
                reqs, step.ids, step.zero, admit=step.admit, finished=step.finished, grammar=grammar
            )
            if (reqs or step.zero or step.finished)
            else StepResult()
        )
        if len(result) != sum(1 for r in reqs if r["sample"]):
            raise RuntimeError("the enclave returned the wrong number of tokens")
        sampled: list[list[int]] = []
        lp_row_of = {s: j for j, s in enumerate(result.logprob_rows)}
        lp_req_rows: dict[int, int] = {}
        n_sampled = 0
        for i, (req_id, r) in enumerate(zip(step.req_ids, reqs, strict=True)):
            if r["sample"]:
                token = result[n_sampled]
                self.requests[req_id].tokens.append(token)
                sampled.append([token])
                if n_sampled in lp_row_of:
                    lp_req_rows[i] = lp_row_of[n_sampled]
                n_sampled += 1
            else:
                sampled.append([])
        return ModelRunnerOutput(
            req_ids=step.req_ids,
            req_id_to_index={r: i for i, r in enumerate(step.req_ids)},
            sampled_token_ids=sampled,
            logprobs=_logprobs_lists(result, lp_req_rows, len(step.req_ids)),
        )

    def close(self) -> None:
        self.enclave.close()


def _logprobs_lists(result: StepResult, rows: dict[int, int], num_reqs: int) -> LogprobsLists | None:
    """vLLM's per-step logprobs: one row per scheduled request, ``[sampled, top-N...]`` ids and values, ranks.

    Rows of requests that did not ask stay zero; vLLM reads only each asking
    request's own ``num_logprobs + 1`` entries (the GPU runner's rows are as
    wide as the batch's largest request too).
    """
    if (
        not rows
        or result.logprob_ids is None
        or result.logprob_values is None
        or result.logprob_ranks is None
    ):
        return None
    width = int(result.logprob_ids.shape[1])
    token_ids = np.zeros((num_reqs, width), dtype=np.int32)
    logprobs = np.zeros((num_reqs, width), dtype=np.float32)
    ranks = np.zeros(num_reqs, dtype=np.int64)
    for req_index, row in rows.items():
        token_ids[req_index] = result.logprob_ids[row].numpy()
        logprobs[req_index] = result.logprob_values[row].numpy()
        ranks[req_index] = int(result.logprob_ranks[row])
    return LogprobsLists(token_ids, logprobs, ranks)


class EnclaveExecutor(InProcessWorkerExecutor):
    """One in-process worker; the model runs in the enclave process it starts."""

    no_ops = NO_OPS

    def make_worker(self) -> EnclaveWorker:
        return EnclaveWorker(self.vllm_config)

    def check_health(self) -> None:
        if self.worker.enclave.closed:
            raise RuntimeError("the enclave is closed")
        self.worker.enclave.kv_stats()  # a round trip: raises EnclaveLost when the enclave is gone
