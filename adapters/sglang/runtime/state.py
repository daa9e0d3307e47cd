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
from dataclasses import dataclass, field
from typing import Any

from pccguard.enforcement.audit import AuditAggregator, AuditKind, AuditLog
from pccguard.enforcement.config import PluginConfig
from pccguard.enforcement.selftest import SelfTestOutcome
from pccguard.enforcement.tenancy.gate import SaltGate
from pccguard.errors import EnforcementError

ENGINE = "sglang"


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
        #: Scrubbed slots, salted requests, refused routes, withheld log records: aggregated, emitted at the
        #: shared audit rate (by a timer when nothing follows: the HTTP server has no idle moment).
        self.aggregate = AuditAggregator(lambda: self.audit, autoflush=True)
        #: Open while SGLang's start-up warmup calls its own HTTP routes (see ``salt``).
        self.warmup_open = False
        #: This process's start-time self-tests (:mod:`.selftest`, :mod:`.selftest_http`): what was proven,
        #: kept for a signed statement of this start; ``None`` until they passed.
        self.selftests: SelfTestOutcome | None = None
        #: How long this process had been starting the engine when its self-tests ran, and (in a
        #: scheduler) how much of that ``Scheduler.__init__`` took.
        self.engine_start_seconds: float | None = None
        self.scheduler_init_seconds: float | None = None
        #: In the HTTP server: what each scheduler rank reported of its self-tests at its ready handshake.
        self.scheduler_selftests: list[dict[str, Any]] = []
        #: In the HTTP server: the refusal its self-tests raised at start-up, re-raised by ``launch_server``.
        self.refusal: EnforcementError | None = None

    def active(self, mitigation: str) -> bool:
        current = self.current
        return current is not None and current.active(mitigation)

    def count(self, kind: AuditKind, mitigation: str, n: int, unit: str, reason: str = "-") -> None:
        """Add to an aggregated counter (``reason="-"``: none); per-call events would flood the log."""
        self.aggregate.count(kind, mitigation, n, unit, None if reason == "-" else reason)

    def flush(self) -> None:
        self.aggregate.flush()

    def counters(self) -> dict[str, int]:
        """Emitted totals plus what is still aggregated (for tests and metrics)."""
        return self.aggregate.counters()


STATE = _State()
