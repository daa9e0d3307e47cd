"""Audit events: the only structured records enforcement code may emit.

PCC allows "only pre-specified, structured logs and metrics" to leave a node.
An ``AuditEvent`` is that allowlist made concrete: a closed set of kinds, and
fields that are counts or short identifiers. There is no free-text field, so
prompt text, token ids, KV values or salts cannot be put into an event even by
mistake (validation rejects anything that is not an identifier). Tenants appear
only as a keyed pseudonym derived from the start's salt key set. Engine adapters
share this one model, and one ``AuditAggregator`` that turns per-request and
per-block actions on hot paths into a bounded number of records.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pccguard.enforcement.tenancy.salts import SaltKeys, process_keys
from pccguard.facts.mitigations import validate_mitigation

IDENT_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"

logger = logging.getLogger("pccguard.audit")


class AuditKind(StrEnum):
    POLICY_EVALUATED = "policy_evaluated"
    STARTUP_REFUSED = "startup_refused"
    MITIGATION_INSTALLED = "mitigation_installed"
    KV_SCRUBBED = "kv_scrubbed"
    CACHE_SALT_APPLIED = "cache_salt_applied"
    CLIENT_SALT_OVERRIDDEN = "client_salt_overridden"
    PREFIX_EXPIRED = "prefix_expired"
    OFFLOAD_ENCRYPTED = "offload_encrypted"
    OFFLOAD_INTEGRITY_FAILURE = "offload_integrity_failure"
    OPTION_REFUSED = "option_refused"
    REQUEST_REFUSED = "request_refused"
    PRIORITY_OVERRIDDEN = "priority_overridden"
    ENDPOINT_REFUSED = "endpoint_refused"
    ENCLAVE_ATTESTED = "enclave_attested"
    ENCLAVE_STATE_WIPED = "enclave_state_wiped"
    SELFTEST_PASSED = "selftest_passed"
    RESIDUE_FOUND = "residue_found"
    LOG_WITHHELD = "log_withheld"


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AuditKind
    engine: str = Field(pattern=IDENT_PATTERN)
    mitigation: str | None = None
    count: int = Field(default=1, ge=0, description="Items affected: blocks, slots, requests, bytes")
    unit: str | None = Field(
        default=None, pattern=r"^(blocks|slots|tokens|requests|bytes|nodes|options|records)$"
    )
    reason: str | None = Field(default=None, pattern=IDENT_PATTERN, description="A reason code, not text")
    rule_ids: list[str] = Field(default_factory=list, max_length=64)
    tenant_ref: str | None = Field(default=None, pattern=r"^t_[0-9a-f]{16}$")
    ts: float = Field(default_factory=time.time)

    @field_validator("mitigation")
    @classmethod
    def _mitigation(cls, value: str | None) -> str | None:
        return None if value is None else validate_mitigation(value)

    @field_validator("rule_ids")
    @classmethod
    def _rule_ids(cls, value: list[str]) -> list[str]:
        for rule_id in value:
            if not re.match(IDENT_PATTERN, rule_id):
                raise ValueError("rule ids must be identifiers")
        return value


class TenantPseudonymizer:
    """Tenant pseudonyms for audit events (``t_`` + 16 hex), from the salt key set's own derivation.

    ``SaltKeys.tenant_pseudonym`` is the salt construction under its own domain, so a
    pseudonym is stable for a tenant within one start (every process of it shares the
    key set), differs between tenants, and neither equals nor reveals a salt. Without
    an explicit key set the process's key set is looked up at each call, not at
    construction, so an engine-core process that adopts its parent's key set after
    building its audit log still uses that one.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: SaltKeys | None = None) -> None:
        if keys is not None and not isinstance(keys, SaltKeys):
            raise TypeError("pseudonyms need a SaltKeys key set")
        self._keys = keys

    def __call__(self, tenant: str) -> str:
        keys = self._keys if self._keys is not None else process_keys()
        return keys.tenant_pseudonym(tenant)

    def __repr__(self) -> str:  # never show the key
        return "TenantPseudonymizer(<key hidden>)"


Sink = Callable[[AuditEvent], None]


def logger_sink(target: logging.Logger) -> Sink:
    """A sink writing each event as one JSON line at INFO to ``target`` (an engine's own logger, for its handler)."""

    def sink(event: AuditEvent) -> None:
        if not target.isEnabledFor(logging.INFO):  # per-block events must cost nothing when nobody listens
            return
        target.info(json.dumps(event.model_dump(mode="json", exclude_none=True), sort_keys=True))

    return sink


#: The default sink: ``pccguard.audit``.
log_sink = logger_sink(logger)


class AuditLog:
    """Validated events, per-(kind, mitigation) counters, and pluggable sinks."""

    def __init__(self, engine: str, sinks: list[Sink] | None = None) -> None:
        self.engine = engine
        self.sinks: list[Sink] = list(sinks) if sinks is not None else [log_sink]
        self.pseudonym = TenantPseudonymizer()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def emit(self, kind: AuditKind, **fields: object) -> AuditEvent:
        tenant = fields.pop("tenant", None)
        if tenant is not None:
            if not isinstance(tenant, str):  # never drop a tenant silently: the event would lose its subject
                raise TypeError("an audit event's tenant must be a string")
            fields["tenant_ref"] = self.pseudonym(tenant)
        event = AuditEvent.model_validate({"kind": kind, "engine": self.engine, **fields})
        with self._lock:
            self._counts[(event.kind.value, event.mitigation or "-")] += event.count
        for sink in self.sinks:
            sink(event)
        return event

    def counters(self) -> dict[str, int]:
        """``{"kv_scrubbed/scrub_freed_kv": 42, ...}``: totals since start, for metrics."""
        with self._lock:
            return {f"{k}/{m}": n for (k, m), n in sorted(self._counts.items())}


#: The one rate for aggregated audit records, in both engines: every (kind,
#: mitigation, unit, reason) leaves as at most one record per second while the
#: engine is busy; ``flush`` sends the rest at once (engine idle, shutdown).
DEFAULT_AUDIT_INTERVAL_S = 1.0

AggregateKey = tuple[AuditKind, str, str, str | None]


class AuditAggregator:
    """Counts actions on hot paths and emits them as aggregated events, at most once per interval.

    One event per scrubbed block or salted request would flood the log and cost the
    hot path a validation each; instead ``count`` adds to a counter keyed by (kind,
    mitigation, unit, reason), and the counters leave as one event per key when the
    interval has passed since the last emission (checked on ``count`` and
    ``maybe_flush``) or on an explicit ``flush``. Nothing is lost: ``counters``
    adds what is still pending to what was emitted. A key is validated against the
    event schema the first time it is counted, so a bad reason code fails in the
    caller, not later inside a flush. Thread-safe; emission happens under the lock
    (re-entrant) so ``counters`` never sees a count in flight.
    """

    def __init__(
        self,
        log: AuditLog | Callable[[], AuditLog],
        *,
        interval_s: float = DEFAULT_AUDIT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        autoflush: bool = False,
    ) -> None:
        if not interval_s >= 0:
            raise ValueError("the audit interval must be a non-negative number of seconds")
        self._log = log
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._pending: Counter[AggregateKey] = Counter()
        self._valid: set[AggregateKey] = set()
        self._last_emit = clock()
        #: With ``autoflush``, counts left pending are emitted by a timer once the interval has passed, for a
        #: process with no idle moment to flush in (an API server); without it, by the next ``count`` or flush.
        self._autoflush = autoflush
        self._timer: threading.Timer | None = None

    @property
    def log(self) -> AuditLog:
        """The log events go to (looked up at each emission when built with a getter)."""
        return self._log if isinstance(self._log, AuditLog) else self._log()

    def count(
        self, kind: AuditKind, mitigation: str, n: int = 1, unit: str = "requests", reason: str | None = None
    ) -> None:
        """Add ``n`` to the counter of (kind, mitigation, unit, reason); emit if the interval has passed."""
        if not isinstance(n, int) or n < 0:
            raise ValueError("an audit count must be a non-negative integer")
        if n == 0:
            return
        key: AggregateKey = (kind, mitigation, unit, reason)
        with self._lock:
            if key not in self._valid:
                self._validate(key)
            self._pending[key] += n
            waited = self._clock() - self._last_emit
            if waited >= self.interval_s:
                self._flush_locked()
            elif self._autoflush and self._timer is None:
                self._timer = threading.Timer(self.interval_s - waited, self._timed_flush)
                self._timer.daemon = True
                self._timer.start()

    def _timed_flush(self) -> None:
        with self._lock:
            self._timer = None
            self._flush_locked()

    def maybe_flush(self) -> bool:
        """Emit the pending counters if the interval has passed; whether anything was emitted."""
        with self._lock:
            if not self._pending or self._clock() - self._last_emit < self.interval_s:
                return False
            self._flush_locked()
            return True

    def flush(self) -> None:
        """Emit every pending counter now (the engine went idle, a refusal must be visible, shutdown)."""
        with self._lock:
            self._flush_locked()

    def pending(self) -> bool:
        """Whether counts wait for emission."""
        with self._lock:
            return bool(self._pending)

    def counters(self) -> dict[str, int]:
        """``{"kind/mitigation": total}``: what the log emitted plus what is still pending."""
        with self._lock:
            totals = self.log.counters()
            for (kind, mitigation, _unit, _reason), n in self._pending.items():
                name = f"{kind.value}/{mitigation}"
                totals[name] = totals.get(name, 0) + n
            return totals

    def _validate(self, key: AggregateKey) -> None:
        kind, mitigation, unit, reason = key
        AuditEvent(kind=kind, engine="-", mitigation=mitigation, unit=unit, reason=reason)
        self._valid.add(key)

    def _flush_locked(self) -> None:
        self._last_emit = self._clock()
        if not self._pending:
            return
        log = self.log
        # Validated at ``count``, so ``emit`` refuses nothing; a key leaves ``pending`` as the log
        # counts it, so a sink that raises loses no count and double-counts none (the rest stay pending).
        for key in sorted(self._pending, key=_order):
            kind, mitigation, unit, reason = key
            n = self._pending.pop(key)
            log.emit(kind, mitigation=mitigation, count=n, unit=unit, reason=reason)


def _order(key: AggregateKey) -> tuple[str, str, str, str]:
    kind, mitigation, unit, reason = key
    return (kind.value, mitigation, unit, reason or "")
