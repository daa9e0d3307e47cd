"""The enclave process for a serving engine: the paged KV cache and the step loop live here.

It extends :class:`~pccguard.enclave_runtime.enclave.EnclaveServer` (same
weight loading, plan check, attestation identity and linear executor) with
three messages:

- ``kv_init {num_blocks, block_size}``: allocate the paged KV cache here, so
  keys and values never exist in the host process;
- ``step {reqs: [{n, start, blocks, sample, key}], zero, admit, finished}`` + ``ids``:
  wipe the sampler state of the ``finished`` requests, zero the listed blocks
  (the engine's ``new_block_ids_to_zero``), take the sampling parameters of the
  newly ``admit``-ted requests, run the chunks, and return one sampled token per
  ``sample`` request (plus the logprob rows of the requests that asked, see
  :mod:`.sampling`); the logits are zeroed before the reply leaves. A ``sample``
  item without ``key`` carries ``temperature`` / ``seed`` itself and leaves no
  state;
- ``zero_blocks {ids}``: scrub blocks on demand (pccguard's ``scrub_freed_kv``).
- ``kv_residue {ids}``: which of these blocks (the host holds them free) still hold data (residue sampling).
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any

import torch

from pccguard.enclave_runtime.channel import Channel
from pccguard.enclave_runtime.codec import Message
from pccguard.enclave_runtime.enclave import EnclaveServer, enclave_main
from pccguard.enclave_runtime.errors import AcceleratorLost, IntegrityError
from pccguard.enclave_runtime.vllm_executor.paged import Chunk, PagedDecoder, PagedKV
from pccguard.enclave_runtime.vllm_executor.sampler import sample_step
from pccguard.enclave_runtime.vllm_executor.sampler_state import SamplerRegistry
from pccguard.enclave_runtime.vllm_executor.sampling_wire import (
    Admission,
    admission_tensors,
    grammar_from_wire,
)

MAX_BLOCKS = 1 << 22


class PagedEnclaveServer(EnclaveServer):
    """:class:`EnclaveServer` plus the paged KV cache and the batched step."""

    #: Per-request sampler states, created with the first step (see :mod:`.sampling`).
    sampling: SamplerRegistry | None = None

    def __init__(self, host: Channel, accel: Channel | None, options: dict[str, Any]) -> None:
        super().__init__(host, accel, options)
        self.paged = PagedDecoder.from_decoder(self.decoder)
        self.kv: PagedKV | None = None
        self.steps = 0

    def kv_init(self, msg: Message) -> Message:
        num_blocks = int(msg.meta["num_blocks"])
        block_size = int(msg.meta["block_size"])
        if not 0 < num_blocks <= MAX_BLOCKS or not 0 < block_size <= 1024:
            return Message("error", {"code": "bad_request", "message": "bad KV cache geometry"})
        s = self.spec
        self.kv = PagedKV(s.n_layers, num_blocks, s.n_kv_heads, block_size, s.head_dim)
        return Message("ok", {"bytes": self.kv.nbytes()})

    def step(self, msg: Message) -> Message:
        if self.sampling is None:
            self.sampling = SamplerRegistry(self.spec.vocab, debug=self.debug)
        registry = self.sampling
        # Finished requests are wiped first, whatever else this step does or fails to do.
        registry.finish(list(msg.meta.get("finished") or []))
        if self.broken:
            return Message("error", {"code": "accelerator_lost", "message": self.broken})
        if self.kv is None:
            return Message("error", {"code": "bad_request", "message": "KV cache not initialized"})
        zeroed = self.kv.zero(list(msg.meta.get("zero") or []))
        reqs = list(msg.meta.get("reqs") or [])
        try:
            registry.admit(
                [
                    Admission.from_wire(a, admission_tensors(msg.tensors, j), registry.vocab)
                    for j, a in enumerate(msg.meta.get("admit") or [])
                ]
            )
        except (KeyError, TypeError, ValueError) as exc:
            return Message("error", {"code": "bad_request", "message": f"sampling parameters: {exc}"})
        ids = [int(t) for t in msg.tensors["ids"].reshape(-1).tolist()] if reqs else []
        chunks: list[Chunk] = []
        row = 0
        for r in reqs:
            n = int(r["n"])
            chunks.append(Chunk(ids[row : row + n], int(r["start"]), [int(b) for b in r["blocks"]]))
            row += n
        if row != len(ids):
            return Message("error", {"code": "bad_request", "message": "token count mismatch"})
        try:
            sampled = sum(1 for r in reqs if r.get("sample"))
            grammar = grammar_from_wire(msg.meta, msg.tensors, sampled, self.spec.vocab)
        except ValueError as exc:
            return Message("error", {"code": "bad_request", "message": f"grammar bitmask: {exc}"})
        started = time.perf_counter()
        tokens: list[int] = []
        lp: dict[str, torch.Tensor] = {}
        lp_rows: list[int] = []
        logits = None
        try:
            if chunks:
                sampling = [r for r in reqs if r.get("sample")]
                entries = [registry.entry(r) for r in sampling]
                logits = self.paged.forward_paged(chunks, self.kv, [bool(r.get("sample")) for r in reqs])
                tokens, lp, lp_rows = sample_step(logits, entries, registry.entropy, grammar)
        except AcceleratorLost as exc:
            self.broken = exc.one_line()
            return Message("error", {"code": "accelerator_lost", "message": exc.one_line()})
        except IntegrityError as exc:
            self.broken = exc.one_line()
            return Message("error", {"code": "integrity", "message": exc.one_line()})
        except ValueError as exc:
            return Message("error", {"code": "bad_request", "message": str(exc)})
        finally:
            if logits is not None:
                logits.zero_()
        self.steps += 1
        meta = {"seconds": time.perf_counter() - started, "zeroed": zeroed, "lp_rows": lp_rows}
        return Message("sampled", meta, {"tokens": torch.tensor(tokens, dtype=torch.int64)} | lp)

    def handle(self, msg: Message) -> Message | None:
        if msg.kind == "step":
            return self.step(msg)
        if msg.kind == "kv_init":
            return self.kv_init(msg)
        if msg.kind == "zero_blocks":
            if self.kv is None:
                return Message("ok", {"zeroed": 0})
            return Message("ok", {"zeroed": self.kv.zero(list(msg.meta.get("ids") or []))})
        if msg.kind == "kv_residue":
            if self.kv is None:
                return Message("ok", {"holding": []})
            return Message("ok", {"holding": self.kv.holding(list(msg.meta.get("ids") or []))})
        if msg.kind == "kv_stats":
            kv = self.kv
            return Message(
                "stats",
                {
                    "steps": self.steps,
                    "zeroed_blocks": kv.zeroed_blocks if kv else 0,
                    "num_blocks": kv.num_blocks if kv else 0,
                    "sampling_states": len(self.sampling) if self.sampling is not None else 0,
                    "mask_pool_tokens": self.pool_tokens(),
                    "mask_pool_target": self.pool_target,
                    "mask_pool_miss_rows": self.linear.stats.pool_miss_rows,
                },
            )
        if msg.kind == "kv_block_nonzero" and self.debug and self.kv is not None:
            block = int(msg.meta["block"])
            nonzero = bool(self.kv.k[:, block].any() or self.kv.v[:, block].any())
            return Message("ok", {"nonzero": nonzero})
        if msg.kind == "sampling_inspect" and self.debug:
            return Message("state", self.sampling.inspect() if self.sampling is not None else {"states": 0})
        return super().handle(msg)

    def close(self) -> None:
        if self.sampling is not None:
            self.sampling.wipe_all()
        if self.kv is not None:
            self.kv.k.zero_()
            self.kv.v.zero_()
        super().close()


def paged_enclave_main(host_conn: Connection, accel_conn: Connection | None, options: dict[str, Any]) -> None:
    """Process entry point: ``enclave_main`` with :class:`PagedEnclaveServer`."""
    enclave_main(host_conn, accel_conn, options, server_cls=PagedEnclaveServer)
