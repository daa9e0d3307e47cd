"""Audit events: the only structured records enforcement code may emit.

PCC allows "only pre-specified, structured logs and metrics" to leave a node.
An ``AuditEvent`` is that allowlist made concrete: a closed set of kinds, and
fields that are counts or short identifiers. There is no free-text field, so
prompt text, token ids, KV values or salts cannot be put into an event even by
mistake (validation rejects anything that is not an identifier). Tenants appear
only as a keyed pseudonym. Engine adapters share this one model.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AuditKind
    engine: str = Field(pattern=IDENT_PATTERN)
    mitigation: str | None = None
    count: int = Field(default=1, ge=0, description="Items affected: blocks, slots, requests, bytes")
    unit: str | None = Field(default=None, pattern=r"^(blocks|slots|tokens|requests|bytes|nodes|options)$")
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
        import re

        for rule_id in value:
            if not re.match(IDENT_PATTERN, rule_id):
                raise ValueError("rule ids must be identifiers")
        return value


class TenantPseudonymizer:
    """Keyed pseudonyms for tenants in audit events; the key lives in memory for this process only."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def __call__(self, tenant: str) -> str:
        digest = hmac.new(self._key, tenant.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"t_{digest[:16]}"

    def __repr__(self) -> str:  # never show the key
        return "TenantPseudonymizer(<key hidden>)"


Sink = Callable[[AuditEvent], None]


def log_sink(event: AuditEvent) -> None:
    if not logger.isEnabledFor(logging.INFO):  # per-block events must cost nothing when nobody listens
        return
    logger.info(json.dumps(event.model_dump(mode="json", exclude_none=True), sort_keys=True))


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
        if isinstance(tenant, str):
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
