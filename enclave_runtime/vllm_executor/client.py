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
from pccguard.enclave_runtime.connection import EnclaveConnection
from pccguard.enclave_runtime.errors import EnclaveRuntimeError
from pccguard.enclave_runtime.model import load_weights, weights_root
from pccguard.enclave_runtime.plan import PartitionPlan, PlanError, default_plan
from pccguard.enclave_runtime.vllm_executor.sampling_wire import Admission, StepResult, grammar_to_wire
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


class PagedEnclave(EnclaveConnection):
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
        mask_pool_bytes: int = 0,
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
            # Masks precomputed while idle (the offline phase of blinding); not security-relevant.
            "mask_pool_bytes": int(mask_pool_bytes),
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

    def verify(self) -> AttestationReport:
        """The model owner's check (fresh nonce, signature, measurement computed here)."""
        weights = load_weights(self.model_dir, self.adapter_dir)
        expected = expected_measurement(self.plan.digest(), weights_root(weights.digests()), self.policy)
        nonce = secrets.token_hex(16)
        reply = self.call(Message("attest", {"nonce": nonce}), "report")
        report = AttestationReport.from_json(str(reply.meta["json"]))
        verify_report(report, expected_measurement=expected, nonce=nonce)
        return report

    def init_kv(self, num_blocks: int, block_size: int) -> int:
        """Allocate the paged KV cache inside the enclave; returns its size in bytes."""
        reply = self.call(Message("kv_init", {"num_blocks": num_blocks, "block_size": block_size}), "ok")
        return int(reply.meta["bytes"])

    def step(
        self,
        reqs: list[dict[str, Any]],
        ids: list[int],
        zero: list[int] | None = None,
        *,
        admit: list[Admission] | None = None,
        finished: list[str] | None = None,
        grammar: dict[int, torch.Tensor] | None = None,
    ) -> StepResult:
        """Run one engine step: the sampled tokens, as a list that also carries any logprob rows.

        ``reqs`` items: ``n, start, blocks, sample`` and, for a sampling request,
        its ``key`` (admitted now or in an earlier step through ``admit``) or an
        inline ``temperature`` / ``seed``. ``finished`` names the keys whose
        sampler state the enclave must wipe. ``grammar`` maps the index of a
        sampling request (among this step's sampling requests) to its grammar
        bitmask row.
        """
        meta: dict[str, Any] = {"reqs": reqs, "zero": list(zero or [])}
        tensors = {"ids": torch.tensor(ids, dtype=torch.int64)}
        if admit:
            meta["admit"] = []
            for j, admission in enumerate(admit):
                a_meta, a_tensors = admission.to_wire()
                meta["admit"].append(a_meta)
                tensors |= {f"a{j}.{name}": t for name, t in a_tensors.items()}
        if finished:
            meta["finished"] = list(finished)
        g_meta, g_tensors = grammar_to_wire(grammar or {})
        meta |= g_meta
        tensors |= g_tensors
        reply = self.call(Message("step", meta, tensors), "sampled")
        try:
            return StepResult.from_reply(reply.meta, reply.tensors)
        except (KeyError, ValueError) as exc:
            raise EnclaveRuntimeError(f"malformed step reply: {exc}") from exc

    def zero_blocks(self, ids: list[int]) -> int:
        return int(self.call(Message("zero_blocks", {"ids": list(ids)}), "ok").meta["zeroed"])

    def kv_residue(self, ids: list[int]) -> list[int]:
        """Which of these blocks still hold data in the enclave's KV (pccguard's residue sampling)."""
        holding = self.call(Message("kv_residue", {"ids": list(ids)}), "ok").meta["holding"]
        if not isinstance(holding, list):
            raise EnclaveRuntimeError("malformed kv_residue reply")
        return [int(i) for i in holding]

    def kv_stats(self) -> dict[str, Any]:
        return dict(self.call(Message("kv_stats"), "stats").meta)

    def block_nonzero(self, block: int) -> bool:
        """Debug-only: does this block hold anything (the residue tests' probe)?"""
        return bool(self.call(Message("kv_block_nonzero", {"block": block}), "ok").meta["nonzero"])
