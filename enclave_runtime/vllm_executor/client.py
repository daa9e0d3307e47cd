"""Host side of the paged enclave: start it, attest it, allocate its KV cache, run steps.

No vLLM import here: this is the seam the vLLM executor drives, and it can be
tested (and reused by another engine) on its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pccguard.enclave_runtime.attestation import (
    AttestationReport,
    expected_measurement,
    policy_digest,
    verify_report,
)
from pccguard.enclave_runtime.backend import SoftwareEnclaveBackend
from pccguard.enclave_runtime.codec import Message
from pccguard.enclave_runtime.errors import EnclaveRuntimeError
from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.model import load_weights, weights_root
from pccguard.enclave_runtime.plan import PartitionPlan, PlanError, default_plan
from pccguard.enclave_runtime.vllm_executor.server import paged_enclave_main


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a daemonic process start the enclave.

    vLLM runs ``EngineCore`` in a daemonic process, and ``multiprocessing``
    refuses children of daemonic processes (so that they are not orphaned).
    The enclave and accelerator are themselves daemonic and are stopped by
    :meth:`PagedEnclaveBackend.close`, so lifting the flag while they start is
    safe; it is restored at once.
    """
    config = mp.current_process()._config  # type: ignore[attr-defined]
    daemon = config.get("daemon")
    config["daemon"] = False
    try:
        yield
    finally:
        if daemon is not None:
            config["daemon"] = daemon


class PagedEnclaveBackend(SoftwareEnclaveBackend):
    """The software backend with :func:`paged_enclave_main` as the enclave's entry point."""

    name = "software-paged"

    enclave_entry = staticmethod(paged_enclave_main)

    def _spawn(self, options: dict[str, Any]) -> None:
        with _children_allowed():
            super()._spawn(options)


def plan_offloads(plan: PartitionPlan) -> bool:
    return any(v != "enclave" for v in plan.default.values()) or any(
        v != "enclave" for o in plan.layers.values() for v in o.values()
    )


class PagedEnclave:
    """One enclave (and its accelerator when the plan offloads), speaking the paged protocol."""

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        plan: PartitionPlan | None = None,
        private_base: bool = False,
        protect_prompts: bool = True,
        timeout_s: float = 60.0,
        startup_timeout_s: float = 300.0,
        threads: int = 1,
        device: str = "cpu",
        debug_inspect: bool = False,
    ) -> None:
        self.plan = plan or default_plan()
        self.model_dir = Path(model_dir)
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        self.timeout_s = timeout_s
        self.backend = PagedEnclaveBackend(
            with_accelerator=plan_offloads(self.plan),
            accelerator_options={"transcript": None, "device": device, "threads": threads},
        )
        self.policy = policy_digest(
            private_base=private_base, protect_prompts=protect_prompts, allow_insecure=False
        )
        options = {
            "model_dir": str(self.model_dir),
            "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
            "plan": self.plan.to_dict(),
            "allow_insecure": False,
            "private_base": private_base,
            "protect_prompts": protect_prompts,
            "timeout_s": timeout_s,
            "threads": threads,
            "debug_inspect": debug_inspect,
        }
        ready = self.backend.start(options, startup_timeout_s)
        if ready.kind != "ready":
            self.backend.close()
            message = str(ready.meta.get("message", "enclave failed to start"))
            if ready.meta.get("code") == "PlanError":
                raise PlanError(message)
            raise EnclaveRuntimeError(message)
        self.ready = dict(ready.meta)
        self.closed = False

    def _call(self, msg: Message, kind: str) -> Message:
        if self.closed:
            raise EnclaveRuntimeError("enclave is closed")
        self.backend.send(msg)
        return HybridExecutor._expect(self.backend.recv(self.timeout_s), kind)

    def verify(self) -> AttestationReport:
        """The model owner's check (fresh nonce, signature, measurement computed here)."""
        weights = load_weights(self.model_dir, self.adapter_dir)
        expected = expected_measurement(self.plan.digest(), weights_root(weights.digests()), self.policy)
        nonce = secrets.token_hex(16)
        reply = self._call(Message("attest", {"nonce": nonce}), "report")
        report = AttestationReport.from_json(str(reply.meta["json"]))
        verify_report(report, expected_measurement=expected, nonce=nonce)
        return report

    def init_kv(self, num_blocks: int, block_size: int) -> int:
        """Allocate the paged KV cache inside the enclave; returns its size in bytes."""
        reply = self._call(Message("kv_init", {"num_blocks": num_blocks, "block_size": block_size}), "ok")
        return int(reply.meta["bytes"])

    def step(self, reqs: list[dict[str, Any]], ids: list[int], zero: list[int] | None = None) -> list[int]:
        """Run one engine step; ``reqs`` items: ``n, start, blocks, sample[, temperature, seed]``."""
        msg = Message(
            "step", {"reqs": reqs, "zero": list(zero or [])}, {"ids": torch.tensor(ids, dtype=torch.int64)}
        )
        reply = self._call(msg, "sampled")
        return [int(t) for t in reply.tensors["tokens"].tolist()]

    def zero_blocks(self, ids: list[int]) -> int:
        return int(self._call(Message("zero_blocks", {"ids": list(ids)}), "ok").meta["zeroed"])

    def kv_stats(self) -> dict[str, Any]:
        return dict(self._call(Message("kv_stats"), "stats").meta)

    def block_nonzero(self, block: int) -> bool:
        """Debug-only: does this block hold anything (the residue tests' probe)?"""
        return bool(self._call(Message("kv_block_nonzero", {"block": block}), "ok").meta["nonzero"])

    def pids(self) -> dict[str, int | None]:
        return self.backend.pids()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.backend.close()

    def __enter__(self) -> PagedEnclave:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
