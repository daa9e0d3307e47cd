"""The shared audit layer: the rate-limited aggregator and the tenant pseudonym.

The aggregator is what both engines' hot paths count into; its promises are a
bounded number of records (at most one per key per interval), exact totals
(nothing lost, pending included) and safety under concurrent counting. The
pseudonym is the salt key set's own derivation under a separate domain.
"""

from __future__ import annotations

import hmac
import pickle
import re
import threading
from hashlib import sha256

import pytest

from pccguard.enforcement.audit import (
    DEFAULT_AUDIT_INTERVAL_S,
    AuditAggregator,
    AuditEvent,
    AuditKind,
    AuditLog,
    TenantPseudonymizer,
)
from pccguard.enforcement.tenancy.salts import SaltKeys, encode_fields, process_keys
from pccguard.errors import InputError

SCRUB = (AuditKind.KV_SCRUBBED, "scrub_freed_kv")
SALT = (AuditKind.CACHE_SALT_APPLIED, "tenant_cache_salt")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def aggregator(interval: float = 1.0) -> tuple[AuditAggregator, list[AuditEvent], Clock]:
    events: list[AuditEvent] = []
    clock = Clock()
    return (
        AuditAggregator(AuditLog("test", sinks=[events.append]), interval_s=interval, clock=clock),
        events,
        clock,
    )


# --------------------------------------------------------------------------- rate


def test_counts_leave_at_most_once_per_interval_and_aggregated() -> None:
    agg, events, clock = aggregator(interval=1.0)
    for _ in range(5):
        agg.count(*SCRUB, 3, "blocks")
    clock.now += 0.5
    agg.count(*SALT, 1, "requests", "tenant")
    assert events == []  # within the interval nothing leaves
    assert not agg.maybe_flush()

    clock.now += 0.5  # the interval has passed: the next count carries everything out, one event per key
    agg.count(*SCRUB, 1, "blocks")
    assert [(e.kind, e.count, e.unit, e.reason) for e in events] == [
        (AuditKind.CACHE_SALT_APPLIED, 1, "requests", "tenant"),
        (AuditKind.KV_SCRUBBED, 16, "blocks", None),
    ]

    clock.now += 0.9
    agg.count(*SCRUB, 2, "blocks")
    assert not agg.maybe_flush() and len(events) == 2
    clock.now += 0.1
    assert agg.maybe_flush() and events[-1].count == 2
    assert not agg.maybe_flush()  # nothing pending: nothing to emit


def test_autoflush_emits_what_nothing_follows_once_the_interval_has_passed() -> None:
    """A process with no idle moment (an API server): a timer carries the last counts out."""
    import time

    events: list[AuditEvent] = []
    agg = AuditAggregator(AuditLog("test", sinks=[events.append]), interval_s=0.2, autoflush=True)
    agg.count(*SCRUB, 3, "blocks")
    agg.count(*SCRUB, 2, "blocks")
    assert events == []  # within the interval nothing leaves
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(e.kind, e.count) for e in events] == [(AuditKind.KV_SCRUBBED, 5)] and not agg.pending()
    # The control: without autoflush the same counts wait for the next count or flush.
    quiet: list[AuditEvent] = []
    held = AuditAggregator(AuditLog("test", sinks=[quiet.append]), interval_s=0.2)
    held.count(*SCRUB, 3, "blocks")
    time.sleep(0.4)
    assert quiet == [] and held.pending()


def test_without_the_interval_every_count_would_be_a_record() -> None:
    """Positive control for the bound above: with a zero interval each count is its own event."""
    agg, events, _clock = aggregator(interval=0.0)
    for _ in range(5):
        agg.count(*SCRUB, 1, "blocks")
    assert len(events) == 5


def test_keys_are_kind_mitigation_unit_and_reason() -> None:
    agg, events, _clock = aggregator()
    agg.count(*SCRUB, 1, "blocks")
    agg.count(*SCRUB, 1, "slots")
    agg.count(*SCRUB, 1, "blocks", "pool_cleared")
    agg.count(*SALT, 1, "requests")
    agg.flush()
    assert sorted((e.kind.value, e.unit or "", e.reason or "") for e in events) == [
        ("cache_salt_applied", "requests", ""),
        ("kv_scrubbed", "blocks", ""),
        ("kv_scrubbed", "blocks", "pool_cleared"),
        ("kv_scrubbed", "slots", ""),
    ]


def test_flush_emits_at_once_and_counters_include_pending() -> None:
    agg, events, _clock = aggregator(interval=3600.0)
    agg.count(*SCRUB, 4, "blocks")
    assert agg.pending() and events == []
    assert agg.counters() == {"kv_scrubbed/scrub_freed_kv": 4}  # pending counts are visible
    agg.flush()
    assert [e.count for e in events] == [4] and not agg.pending()
    agg.count(*SCRUB, 2, "blocks")
    assert agg.counters() == {"kv_scrubbed/scrub_freed_kv": 6}  # emitted + pending
    agg.flush()
    agg.flush()  # nothing pending: no empty event
    assert [e.count for e in events] == [4, 2]


def test_zero_counts_nothing_and_negative_is_refused() -> None:
    agg, events, _clock = aggregator(interval=0.0)
    agg.count(*SCRUB, 0, "blocks")
    assert events == [] and not agg.pending()
    with pytest.raises(ValueError):
        agg.count(*SCRUB, -1, "blocks")
    with pytest.raises(ValueError):
        AuditAggregator(AuditLog("test"), interval_s=float("nan"))


def test_a_bad_key_is_refused_when_counted_not_lost_in_a_flush() -> None:
    agg, events, _clock = aggregator(interval=3600.0)
    agg.count(*SCRUB, 1, "blocks", "scrubbed")  # positive control: a reason code is accepted
    with pytest.raises(ValueError):
        agg.count(*SCRUB, 1, "blocks", "the user typed: my password")
    with pytest.raises(ValueError):
        agg.count(*SCRUB, 1, "furlongs")
    with pytest.raises(InputError):
        agg.count(AuditKind.KV_SCRUBBED, "no_such_mitigation", 1, "blocks")
    agg.flush()
    assert [(e.reason, e.count) for e in events] == [("scrubbed", 1)]


def test_a_failing_sink_loses_no_count_and_counts_none_twice() -> None:
    emitted: list[AuditEvent] = []
    fail = {"once": True}

    def sink(event: AuditEvent) -> None:
        if fail.pop("once", False):
            raise RuntimeError("sink down")
        emitted.append(event)

    agg = AuditAggregator(AuditLog("test", sinks=[sink]), interval_s=3600.0)
    agg.count(*SALT, 2, "requests")
    agg.count(*SCRUB, 5, "blocks")
    with pytest.raises(RuntimeError):
        agg.flush()  # the error reaches the caller
    assert agg.counters() == {"cache_salt_applied/tenant_cache_salt": 2, "kv_scrubbed/scrub_freed_kv": 5}
    assert agg.pending()  # the key after the failing one still waits
    agg.flush()
    assert [(e.kind, e.count) for e in emitted] == [(AuditKind.KV_SCRUBBED, 5)]
    assert agg.counters() == {"cache_salt_applied/tenant_cache_salt": 2, "kv_scrubbed/scrub_freed_kv": 5}


def test_concurrent_counts_are_never_lost() -> None:
    emitted: list[int] = []
    agg = AuditAggregator(AuditLog("test", sinks=[lambda e: emitted.append(e.count)]), interval_s=0.0)
    threads, per_thread = 8, 2000
    start = threading.Barrier(threads)

    def work(i: int) -> None:
        start.wait()
        for _ in range(per_thread):
            agg.count(*SCRUB, 1, "blocks", f"r{i % 2}")
            if i == 0:
                agg.counters()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    agg.flush()
    assert sum(emitted) == threads * per_thread
    assert agg.counters() == {"kv_scrubbed/scrub_freed_kv": threads * per_thread}


def test_the_log_can_be_looked_up_at_each_emission() -> None:
    """An adapter that swaps its process log (tests collect events) keeps one aggregator."""
    first: list[AuditEvent] = []
    second: list[AuditEvent] = []
    current = {"log": AuditLog("test", sinks=[first.append])}
    agg = AuditAggregator(lambda: current["log"], interval_s=3600.0)
    agg.count(*SCRUB, 1, "blocks")
    agg.flush()
    current["log"] = AuditLog("test", sinks=[second.append])
    agg.count(*SCRUB, 2, "blocks")
    agg.flush()
    assert [e.count for e in first] == [1] and [e.count for e in second] == [2]


def test_one_documented_default_interval() -> None:
    assert AuditAggregator(AuditLog("test")).interval_s == DEFAULT_AUDIT_INTERVAL_S == 1.0


# --------------------------------------------------------------------------- pseudonym

PSEUDONYM = re.compile(r"^t_[0-9a-f]{16}$")


def test_pseudonyms_are_stable_per_tenant_within_a_key_set() -> None:
    keys = SaltKeys.generate()
    name = TenantPseudonymizer(keys)
    assert PSEUDONYM.match(name("alice"))
    assert name("alice") == TenantPseudonymizer(keys)("alice")
    assert name("alice") == TenantPseudonymizer(pickle.loads(pickle.dumps(keys)))("alice")  # engine-core copy
    assert name("alice") != name("bob")
    assert name("alice") != TenantPseudonymizer(SaltKeys.generate())("alice")  # another start


def test_a_pseudonym_is_the_typed_derivation_under_its_own_domain() -> None:
    """Known answer: HMAC-SHA256 over the length-prefixed (domain, kind, tenant) with the salt key."""
    master = bytes(range(32))
    keys = SaltKeys(master)
    data = encode_fields(b"pccguard.audit-pseudonym.v1", [b"tenant", b"alice"])
    expected = "t_" + hmac.new(keys._salt, data, sha256).digest()[:8].hex()
    assert keys.tenant_pseudonym("alice") == expected
    salt_data = encode_fields(b"pccguard.salt.v1", [b"tenant", b"alice"])
    assert keys.tenant_salt("alice") == "pcs1-" + hmac.new(keys._salt, salt_data, sha256).digest()[:16].hex()


def test_a_pseudonym_never_equals_or_reveals_a_salt() -> None:
    keys = SaltKeys.generate()
    for i in range(300):
        tenant = f"tenant-{i}"
        ref, salt = keys.tenant_pseudonym(tenant), keys.tenant_salt(tenant)
        assert ref[2:] not in salt and ref != salt
        assert ref[2:] != salt[len("pcs1-") : len("pcs1-") + 16]
    with pytest.raises(ValueError):
        keys.tenant_pseudonym("")


def test_the_pseudonymizer_shows_no_key() -> None:
    keys = SaltKeys(bytes(range(32)))
    name = TenantPseudonymizer(keys)
    for secret in (keys._salt, keys._mint):
        assert secret.hex() not in repr(name) and repr(secret) not in repr(name)
    assert "hidden" in repr(name)
    with pytest.raises(TypeError):
        TenantPseudonymizer(b"\x00" * 32)  # type: ignore[arg-type]


def test_audit_events_name_tenants_by_the_process_key_set() -> None:
    events: list[AuditEvent] = []
    log = AuditLog("test", sinks=[events.append])
    event = log.emit(SALT[0], mitigation=SALT[1], unit="requests", tenant="acme")
    assert event.tenant_ref == process_keys().tenant_pseudonym("acme")
    assert "acme" not in event.model_dump_json()
    assert (
        log.emit(SALT[0], mitigation=SALT[1], unit="requests", tenant=None).tenant_ref is None
    )  # no tenant: no reference


def test_a_tenant_that_is_not_a_string_is_refused_not_dropped() -> None:
    log = AuditLog("test", sinks=[])
    with pytest.raises(TypeError):
        log.emit(SALT[0], mitigation=SALT[1], tenant=42)
    with pytest.raises(ValueError):
        log.emit(SALT[0], mitigation=SALT[1], tenant="")
    assert log.counters() == {}
