"""Per-process enforcement state: what the policy decided to install, audit, keys.

Every SGLang process (launcher, scheduler, detokenizer) loads the plugin and
decides for itself from the same resolved server arguments, so no decision has
to travel between processes -- except the salt key set: the launcher generates
it and it rides to the scheduler processes as an attribute of the resolved
``ServerArgs`` (pickled over the process-start pipe; not a field, so never
printed), because the scheduler must open the salt tokens the HTTP ingress mints.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from pccguard.enforcement.audit import AuditKind, AuditLog
from pccguard.enforcement.config import PluginConfig
from pccguard.enforcement.tenancy.gate import SaltGate

ENGINE = "sglang"
#: Aggregated counters (scrubbed slots, salted requests) are emitted at most this often.
EMIT_INTERVAL_S = 5.0


@dataclass
class Enforcement:
    """The outcome of the startup decision in this process."""

    config: PluginConfig
    installed: frozenset[str]
    admin_routes: str = "require_admin_key"  # or "refuse"
    #: The salt gate (and its key set) when ``tenant_cache_salt`` is installed.
    gate: SaltGate | None = field(default=None, repr=False)
    salt_cache: dict[str, str] = field(default_factory=dict, repr=False)  # tenant -> derived salt
    radix_cache: bool = True

    def active(self, mitigation: str) -> bool:
        return mitigation in self.installed


class _State:
    """Process-global holder; ``current`` is ``None`` until the startup decision ran."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.current: Enforcement | None = None
        self.audit = AuditLog(ENGINE)
        self._pending: dict[tuple[AuditKind, str, str, str], int] = defaultdict(int)
        self._last_emit = time.monotonic()
        #: Open while SGLang's start-up warmup calls its own HTTP routes (see ``salt``).
        self.warmup_open = False

    def active(self, mitigation: str) -> bool:
        current = self.current
        return current is not None and current.active(mitigation)

    def count(self, kind: AuditKind, mitigation: str, n: int, unit: str, reason: str = "-") -> None:
        """Add to an aggregated counter; per-call events would flood the log on hot paths."""
        if n <= 0:
            return
        with self.lock:
            self._pending[(kind, mitigation, unit, reason)] += n
            if time.monotonic() - self._last_emit >= EMIT_INTERVAL_S:
                self._flush_locked()

    def flush(self) -> None:
        with self.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        pending, self._pending = self._pending, defaultdict(int)
        self._last_emit = time.monotonic()
        for (kind, mitigation, unit, reason), n in pending.items():
            self.audit.emit(
                kind, mitigation=mitigation, count=n, unit=unit, reason=None if reason == "-" else reason
            )

    def counters(self) -> dict[str, int]:
        """Emitted totals plus what is still aggregated (for tests and metrics)."""
        with self.lock:
            totals = dict(self.audit.counters())
            for (kind, mitigation, _unit, _reason), n in self._pending.items():
                key = f"{kind.value}/{mitigation}"
                totals[key] = totals.get(key, 0) + n
            return totals


STATE = _State()
