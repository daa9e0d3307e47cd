"""``HybridExecutor``: the host-side API of the enclave–accelerator hybrid executor.

The host is untrusted: it passes paths and token ids, receives tokens (and, for
evaluation, logits) only when a request completes, and never sees a weight, a
mask or an activation. It verifies the enclave's attestation before use and
emits ``ENCLAVE_ATTESTED`` / ``ENCLAVE_STATE_WIPED`` audit events.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pccguard.enclave_runtime.attestation import (
    AttestationReport,
    expected_measurement,
    policy_digest,
    verify_report,
)
from pccguard.enclave_runtime.backend import EnclaveBackend, SoftwareEnclaveBackend
from pccguard.enclave_runtime.codec import Message
from pccguard.enclave_runtime.connection import EnclaveConnection, expect
from pccguard.enclave_runtime.errors import EnclaveRuntimeError
from pccguard.enclave_runtime.model import load_weights, weights_root
from pccguard.enclave_runtime.plan import PartitionPlan, PlanError, default_plan
from pccguard.enforcement.audit import AuditKind, AuditLog

MITIGATION = "hybrid_executor"


@dataclass
class GenerationResult:
    """A completed request: every token, and the logits that chose them when asked for."""

    tokens: list[int]
    logits: torch.Tensor | None = None
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


class HybridExecutor(EnclaveConnection):
    """Start with :meth:`start`; use as a context manager so the processes always stop."""

    def __init__(
        self,
        backend: EnclaveBackend,
        ready: Message,
        plan: PartitionPlan,
        timeout_s: float,
        audit: AuditLog | None,
        policy: str | None = None,
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.ready = ready.meta
        self.plan = plan
        self.timeout_s = timeout_s
        self.audit = audit or AuditLog("enclave", sinks=[])
        self.closed = False

    @classmethod
    def start(
        cls,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        plan: PartitionPlan | None = None,
        allow_insecure: bool = False,
        private_base: bool = False,
        transcript: str | Path | None = None,
        device: str = "auto",
        timeout_s: float = 30.0,
        startup_timeout_s: float = 300.0,
        enclave_threads: int = 1,
        accelerator_threads: int | None = None,
        debug_inspect: bool = False,
        backend: EnclaveBackend | None = None,
        audit: AuditLog | None = None,
    ) -> HybridExecutor:
        """Spawn the enclave (and the accelerator when the plan offloads anything)."""
        plan = plan or default_plan()
        offloads = any(v != "enclave" for v in plan.default.values()) or any(
            v != "enclave" for o in plan.layers.values() for v in o.values()
        )
        options = {
            "model_dir": str(model_dir),
            "adapter_dir": str(adapter_dir) if adapter_dir else None,
            "plan": plan.to_dict(),
            "allow_insecure": allow_insecure,
            "private_base": private_base,
            "timeout_s": timeout_s,
            "threads": enclave_threads,
            "debug_inspect": debug_inspect,
        }
        backend = backend or SoftwareEnclaveBackend(
            with_accelerator=offloads,
            accelerator_options={
                "transcript": str(transcript) if transcript else None,
                "device": device,
                "threads": accelerator_threads,
            },
        )
        policy = policy_digest(private_base=private_base, allow_insecure=allow_insecure)
        ready = backend.start(options, startup_timeout_s)
        if ready.kind != "ready":
            backend.close()
            message = str(ready.meta.get("message", "enclave failed to start"))
            if ready.meta.get("code") == "PlanError":
                raise PlanError(message)
            raise EnclaveRuntimeError(message)
        return cls(backend, ready, plan, timeout_s, audit, policy)

    # ------------------------------------------------------------------ attestation

    def attest(self, nonce: str | None = None) -> AttestationReport:
        nonce = nonce or secrets.token_hex(16)
        reply = self.call(Message("attest", {"nonce": nonce}), "report")
        return AttestationReport.from_json(str(reply.meta["json"]))

    def verify(self, model_dir: str | Path, adapter_dir: str | Path | None = None) -> AttestationReport:
        """The model owner's check: fresh nonce, signature, and the measurement it computes itself."""
        weights = load_weights(model_dir, adapter_dir)
        expected = expected_measurement(self.plan.digest(), weights_root(weights.digests()), self.policy)
        nonce = secrets.token_hex(16)
        report = self.attest(nonce)
        verify_report(report, expected_measurement=expected, nonce=nonce)
        self.audit.emit(AuditKind.ENCLAVE_ATTESTED, mitigation=MITIGATION)
        return report

    # ------------------------------------------------------------------ requests

    def precompute(self, tokens: int) -> float:
        """Offline blinding factors for ``tokens`` future tokens; returns seconds spent in the enclave."""
        reply = self.call(Message("precompute", {"tokens": tokens}), "ok", max(self.timeout_s, 600.0))
        return float(reply.meta["seconds"])

    def generate(
        self, prompt: list[int], max_new_tokens: int, *, return_logits: bool = False
    ) -> GenerationResult:
        """Greedy generation; raises on any failure, never returns a partial result."""
        if self.closed:
            raise EnclaveRuntimeError("executor is closed")
        msg = Message(
            "generate",
            {"max_new": max_new_tokens, "return_logits": return_logits},
            {"prompt": torch.tensor(prompt, dtype=torch.int64)},
        )
        self.backend.send(msg)
        while True:
            reply = self.backend.recv(self.timeout_s * 2)
            if reply.kind != "progress":
                break
        wiped = int(reply.meta.get("wiped_tokens", 0))
        if wiped:
            self.audit.emit(AuditKind.ENCLAVE_STATE_WIPED, mitigation=MITIGATION, count=wiped, unit="tokens")
        expect(reply, "result")
        tokens = [int(t) for t in reply.tensors["tokens"].tolist()]
        if len(tokens) != max_new_tokens:
            raise EnclaveRuntimeError("enclave returned an incomplete result")
        return GenerationResult(
            tokens, reply.tensors.get("logits"), float(reply.meta.get("seconds", 0.0)), dict(reply.meta)
        )

    def stats(self) -> dict[str, Any]:
        return dict(self.call(Message("stats"), "stats").meta)

    def inspect_state(self) -> dict[str, Any]:
        """Debug-only view of the enclave's per-request state (the software backend's test hook)."""
        return dict(self.call(Message("inspect"), "state").meta)

    def flush_transcript(self) -> None:
        self.call(Message("flush"), "ok")
