"""The process boundary: what crosses, failure handling, and the per-request wipe."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pccguard.enclave_runtime import field as F
from pccguard.enclave_runtime.errors import AcceleratorLost, EnclaveRuntimeError
from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.model import load_weights
from pccguard.enclave_runtime.plan import PartitionPlan, PlanError, default_plan
from pccguard.enclave_runtime.recorder import Transcript
from pccguard.enforcement.audit import AuditKind, AuditLog


def test_state_is_wiped_after_every_request(hybrid: HybridExecutor) -> None:
    hybrid.generate([1, 2, 3], 5)
    state = hybrid.inspect_state()
    assert state["request_active"] is False
    assert state["last_wiped"] and state["last_all_zero"]
    assert state["last_kv_elems"] > 0 and state["last_secret_tensors"] > 0  # there was state, now zero


def test_wipe_emits_audit_events(model_dirs: tuple[Path, Path]) -> None:
    events: list[Any] = []
    audit = AuditLog("enclave", sinks=[events.append])
    with HybridExecutor.start(*model_dirs, audit=audit) as ex:
        ex.generate([4, 5], 3)
    kinds = [e.kind for e in events]
    assert kinds == [AuditKind.ENCLAVE_STATE_WIPED]
    assert events[0].count == 2 + 3 - 1 and events[0].unit == "tokens"


def test_only_public_weights_and_blinded_inputs_cross(
    default_campaign: tuple[Path, Any], model_dirs: tuple[Path, Path]
) -> None:
    transcript = Transcript.load(default_campaign[0])
    weights = load_weights(*model_dirs)
    loads = transcript.select("load")
    assert {e.meta["mode"] for e in loads} == {"blinded"}
    for e in loads:
        layer, group = int(e.meta["layer"]), str(e.meta["group"])
        expected, _, _ = F.quantize_weight(weights.group_weight(layer, group))
        assert np.array_equal(transcript.tensor(e, "w"), expected.numpy().astype(np.int32))  # W₀ only
    private = [d.a for d in weights.deltas.values()] + [d.b for d in weights.deltas.values()]
    sizes = {t.numel() for t in private}
    for e in transcript.entries:
        for name in e.names:
            arr = transcript.tensor(e, name)
            if arr.size in sizes:
                assert not any(
                    np.allclose(arr.reshape(-1), t.numpy().reshape(-1))
                    for t in private
                    if t.numel() == arr.size
                )
    xs = np.concatenate([transcript.tensor(e, "x").reshape(-1) for e in transcript.select("gemm")])
    assert xs.min() >= 0 and xs.max() < F.P
    assert abs(xs.mean() / F.P - 0.5) < 0.02  # blinded inputs look uniform over the field


def test_killing_the_accelerator_fails_cleanly(model_dirs: tuple[Path, Path]) -> None:
    with HybridExecutor.start(*model_dirs, debug_inspect=True, timeout_s=20) as ex:
        ex.generate([1, 2], 2)  # warm
        pid = ex.pids()["accelerator"]
        assert pid is not None
        killer = threading.Timer(0.5, os.kill, args=(pid, signal.SIGKILL))
        killer.start()
        started = time.monotonic()
        with pytest.raises(AcceleratorLost):
            ex.generate([3, 4, 5], 4000)  # would take far longer than 0.5 s
        assert time.monotonic() - started < 15
        killer.join()
        state = ex.inspect_state()
        assert state["last_all_zero"] and not state["request_active"]
        with pytest.raises(AcceleratorLost):  # and it stays failed, no silent fallback
            ex.generate([1], 1)


def test_a_stalled_accelerator_times_out(model_dirs: tuple[Path, Path]) -> None:
    with HybridExecutor.start(*model_dirs, timeout_s=1.5) as ex:
        pid = ex.pids()["accelerator"]
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(AcceleratorLost, match="did not answer"):
                ex.generate([1, 2, 3], 8)
            assert time.monotonic() - started < 10
        finally:
            os.kill(pid, signal.SIGCONT)


def test_a_leaky_plan_is_refused_before_anything_runs(model_dirs: tuple[Path, Path]) -> None:
    data = default_plan().to_dict()
    data["default"]["gate_up.delta"] = "offload_clear"
    with pytest.raises(PlanError, match=r"gate_up.delta"):
        HybridExecutor.start(*model_dirs, plan=PartitionPlan.from_dict(data))


def test_bad_requests_are_errors(hybrid: HybridExecutor) -> None:
    with pytest.raises(EnclaveRuntimeError, match="bad_request"):
        hybrid.generate([10_000], 2)
    with pytest.raises(EnclaveRuntimeError, match="bad_request"):
        hybrid.generate([], 2)
    assert hybrid.generate([1], 1).tokens  # still serving
