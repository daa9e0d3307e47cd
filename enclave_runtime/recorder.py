"""The transcript: every tensor that crosses to the accelerator, with timings, for the attack suite.

It lives on the untrusted side (inside the accelerator process), so it records
exactly the attacker's view: stored weights, blinded inputs, returned products,
message kinds, shapes and arrival times. Saved as one ``.npz`` (no pickle):
arrays ``e<seq>.<name>`` plus a JSON index.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pccguard.enclave_runtime.codec import Message


@dataclass
class Entry:
    seq: int
    t: float
    direction: str  # "in" (to the accelerator) | "out" (back to the enclave)
    kind: str
    meta: dict[str, Any]
    names: list[str]
    nbytes: int


@dataclass
class Transcript:
    entries: list[Entry] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, direction: str, msg: Message) -> None:
        seq = len(self.entries)
        names = []
        for name, t in msg.tensors.items():
            key = f"e{seq:07d}.{name}"
            self.arrays[key] = t.detach().to("cpu").numpy().copy()
            names.append(name)
        self.entries.append(
            Entry(seq, time.monotonic(), direction, msg.kind, dict(msg.meta), names, msg.nbytes())
        )

    def tensor(self, entry: Entry, name: str) -> np.ndarray:
        return self.arrays[f"e{entry.seq:07d}.{name}"]

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        index = json.dumps([e.__dict__ for e in self.entries])
        arrays: dict[str, Any] = {"__index__": np.array(index), **self.arrays}
        np.savez(out, **arrays)
        return out

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        with np.load(path, allow_pickle=False) as data:
            index = json.loads(str(data["__index__"]))
            arrays = {k: data[k] for k in data.files if k != "__index__"}
        return cls([Entry(**e) for e in index], arrays)

    def select(self, kind: str, direction: str = "in") -> list[Entry]:
        return [e for e in self.entries if e.kind == kind and e.direction == direction]


class Recorder:
    """Wraps the accelerator's view; ``None`` path means record nothing (benchmarks)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.transcript = Transcript() if path else None

    def record(self, direction: str, msg: Message) -> None:
        if self.transcript is not None:
            self.transcript.add(direction, msg)

    def flush(self) -> None:
        if self.transcript is not None and self.path:
            self.transcript.save(self.path)
