"""The attacker's view of a transcript: per linear group, what the accelerator stored and saw.

Only transcript contents are used here (stored weights, inputs, outputs, modes);
nothing from inside the enclave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pccguard.enclave_runtime.field import P
from pccguard.enclave_runtime.recorder import Transcript

Key = tuple[int, str]


@dataclass
class GroupView:
    """One offloaded group: its mode, the stored weight ``[d_in, d_out]``, and every call's rows."""

    key: Key
    mode: str  # "blinded" | "clear" | "obfuscated"
    weight: np.ndarray
    inputs: list[np.ndarray] = field(default_factory=list)  # one array [n, d_in] per call
    outputs: list[np.ndarray] = field(default_factory=list)

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows as float64, field elements lifted to their centred representatives."""
        x = np.concatenate(self.inputs) if self.inputs else np.zeros((0, self.weight.shape[0]))
        y = np.concatenate(self.outputs) if self.outputs else np.zeros((0, self.weight.shape[1]))
        if self.mode == "blinded":
            x, y = _lift(x), _lift(y)
        return x.astype(np.float64), y.astype(np.float64)


def _lift(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64)
    return np.where(a > P // 2, a - P, a)


@dataclass
class AttackerView:
    groups: dict[Key, GroupView]
    timings: list[float]

    @classmethod
    def from_transcript(cls, transcript: Transcript | str | Path) -> AttackerView:
        t = transcript if isinstance(transcript, Transcript) else Transcript.load(transcript)
        groups: dict[Key, GroupView] = {}
        pending: Key | None = None
        timings = []
        for e in t.entries:
            if e.direction == "in" and e.kind == "load":
                key = (int(e.meta["layer"]), str(e.meta["group"]))
                groups[key] = GroupView(key, str(e.meta["mode"]), t.tensor(e, "w").astype(np.float64))
            elif e.direction == "in" and e.kind == "gemm":
                pending = (int(e.meta["layer"]), str(e.meta["group"]))
                groups[pending].inputs.append(t.tensor(e, "x"))
                timings.append(e.t)
            elif e.direction == "out" and e.kind == "result" and pending is not None:
                groups[pending].outputs.append(t.tensor(e, "y"))
                pending = None
        return cls(groups, timings)

    def prefill_rows(self, key: Key, calls_per_request: list[int]) -> np.ndarray:
        """Row 0 (position 0) of each request's first call of ``key``, lifted; requests in order.

        The attacker chose the prompts, so it knows how many calls each request makes.
        """
        g = self.groups[key]
        rows = []
        idx = 0
        for calls in calls_per_request:
            if idx >= len(g.inputs):
                break
            rows.append(g.inputs[idx][0])
            idx += calls
        arr = np.array(rows)
        return (_lift(arr) if g.mode == "blinded" else arr).astype(np.float64)
