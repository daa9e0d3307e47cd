"""Residue sampling while serving: free KV blocks checked for zeros, a few at a time, now and then.

The start-time self-test proves the scrub once; a later code path that frees
KV without zeroing it (a new eviction route, an allocator the plugin does not
hook, a device-side bug) would leave residue that no start ever sees. The
sampler checks, at most once per interval, a handful of blocks picked at random
from the ones the engine holds free (and not queued for zeroing), and reads
them on their device. Each engine gives it two callables: which block ids are
free now, and which of given ids still hold a non-zero byte.

Cost is bounded by design: between samples one clock read per scheduler step
(:meth:`ResidueSampler.due`), and a sample reads ``blocks`` blocks of every KV
tensor. Found residue is an audit event (``residue_found``) and a counter and,
unless the operator chose ``audit``, stops admission: the engine serves what
it has and refuses new requests, since every new allocation could hand a
tenant another tenant's KV.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pccguard.enforcement.audit import AuditKind, AuditLog

MITIGATION = "scrub_freed_kv"
Action = Literal["stop_admitting", "audit"]
#: What a refused request is told once residue was found (no ids, no data).
REFUSAL = "pccguard: freed KV memory was found holding data; this server admits no new requests"


@dataclass(frozen=True)
class Sample:
    """One sample: how many free blocks were read and which still held data."""

    checked: int
    dirty: tuple[int, ...]


@dataclass
class ResidueSampler:
    """Samples free KV blocks for residue; one per engine process that owns KV."""

    audit: AuditLog
    interval_s: float = 5.0
    blocks: int = 8
    action: Action = "stop_admitting"
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.SystemRandom)
    samples: int = 0
    blocks_checked: int = 0
    residue_found: int = 0
    _next_at: float = 0.0
    _tripped: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError("the residue sampling interval must be positive")
        if not 1 <= self.blocks <= 4096:
            raise ValueError("the residue sample must read between 1 and 4096 blocks")
        self._next_at = self.clock() + self.interval_s

    def due(self) -> bool:
        """True at most once per interval, and never once admission stopped (nothing more to decide)."""
        if self._tripped:
            return False
        now = self.clock()
        if now < self._next_at:
            return False
        self._next_at = now + self.interval_s
        return True

    def pick(self, free: Sequence[int]) -> list[int]:
        """Up to ``blocks`` ids chosen at random from ``free`` (read by index: a device tensor stays put)."""
        if len(free) <= self.blocks:
            return [int(i) for i in free]
        return [int(free[i]) for i in self.rng.sample(range(len(free)), self.blocks)]

    def sample(
        self, free: Callable[[], Sequence[int]], dirty: Callable[[list[int]], Sequence[int]]
    ) -> Sample:
        """Read a random handful of ``free()`` blocks; ``dirty(ids)`` names those still holding data.

        An error in either callable propagates: the caller decides, and a
        sampler that cannot read is not a clean result.
        """
        chosen = self.pick(free())
        named = {int(i) for i in dirty(chosen)} if chosen else set()
        if not named <= set(chosen):  # a reader that answers for other blocks is broken: no result
            raise ValueError("the residue reader named blocks it was not asked about")
        found = tuple(sorted(named))
        with self._lock:
            self.samples += 1
            self.blocks_checked += len(chosen)
            if found:
                self.residue_found += len(found)
                self._tripped = self._tripped or self.action == "stop_admitting"
        if found:
            self.audit.emit(
                AuditKind.RESIDUE_FOUND,
                mitigation=MITIGATION,
                count=len(found),
                unit="blocks",
                reason="admission_stopped" if self.action == "stop_admitting" else "audited",
            )
        return Sample(checked=len(chosen), dirty=found)

    @property
    def admitting(self) -> bool:
        """False once residue was found under ``stop_admitting`` (for the rest of this start)."""
        return not self._tripped

    def counters(self) -> dict[str, int]:
        """Totals since start, for the engine's metrics."""
        with self._lock:
            return {
                "residue_samples": self.samples,
                "residue_blocks_checked": self.blocks_checked,
                "residue_blocks_found": self.residue_found,
            }
