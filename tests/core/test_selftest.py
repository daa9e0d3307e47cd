"""The start-time self-test gate: every installed mitigation proven, any failure or error refuses the start.

The engines' own checks are tested on the real engines (tests/vllm, tests/sglang);
this file tests the gate they share: what counts as proven, what refuses, what
is recorded, and that nothing an exception does can turn into a pass.
"""

from __future__ import annotations

import pytest

from pccguard.enforcement.audit import AuditEvent, AuditKind, AuditLog
from pccguard.enforcement.selftest import (
    Evidence,
    SelfTestFailed,
    budget_seconds,
    require_verified,
    run_checks,
    verified_facts,
)
from pccguard.errors import EnforcementError
from pccguard.facts.model import Deployment, DeploymentFacts


def _audit() -> tuple[AuditLog, list[AuditEvent]]:
    events: list[AuditEvent] = []
    return AuditLog("vllm", sinks=[events.append]), events


def _passes() -> Evidence:
    return Evidence(
        checked="canary written, freed, read back as zeros", blocks=4, layers=2, ranks=1, device="cpu"
    )


def _residue() -> Evidence:
    raise SelfTestFailed("canary still in 4 of 4 freed blocks of KV tensor 1 on rank 0")


def _raises() -> Evidence:
    raise RuntimeError("worker died")


def test_every_installed_mitigation_proven_passes_and_is_audited() -> None:
    audit, events = _audit()
    outcome = require_verified("vllm", {"scrub_freed_kv": _passes}, ["scrub_freed_kv"], audit)
    assert outcome.verified == ["scrub_freed_kv"]
    record = outcome.records[0]
    assert record.passed and (record.blocks, record.layers, record.ranks, record.device) == (4, 2, 1, "cpu")
    assert [e.kind for e in events] == [AuditKind.SELFTEST_PASSED]
    assert "scrub_freed_kv (4 blocks, 2 layers, 1 ranks) on cpu" in outcome.summary()


@pytest.mark.parametrize(
    ("check", "found"),
    [
        (_residue, "canary still in 4 of 4 freed blocks"),
        (_raises, "error: RuntimeError: worker died"),
        (lambda: None, "returned no evidence"),
        (lambda: Evidence(checked=""), "returned no evidence"),
    ],
)
def test_a_failing_or_erroring_check_refuses_in_one_line(check: object, found: str) -> None:
    audit, events = _audit()
    with pytest.raises(EnforcementError) as info:
        require_verified(
            "vllm",
            {"scrub_freed_kv": check, "tenant_cache_salt": _passes},
            ["scrub_freed_kv", "tenant_cache_salt"],
            audit,
        )  # type: ignore[dict-item]
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("pccguard refuses to start vllm: self-test of scrub_freed_kv failed: ")
    assert found in message
    refused = [e for e in events if e.kind == AuditKind.STARTUP_REFUSED]
    assert refused and refused[0].reason == "selftest_failed" and refused[0].mitigation == "scrub_freed_kv"
    # Nothing is audited as passed when the start is refused.
    assert not [e for e in events if e.kind == AuditKind.SELFTEST_PASSED]


def test_an_installed_mitigation_without_a_check_refuses() -> None:
    audit, _ = _audit()
    with pytest.raises(EnforcementError, match="self-test of prefix_cache_ttl failed: no self-test exists"):
        require_verified("sglang", {"scrub_freed_kv": _passes}, ["scrub_freed_kv", "prefix_cache_ttl"], audit)


def test_every_failure_is_named() -> None:
    audit, _ = _audit()
    with pytest.raises(EnforcementError, match=r"\(and 1 more: tenant_cache_salt\)"):
        require_verified(
            "vllm",
            {"scrub_freed_kv": _residue, "tenant_cache_salt": _raises},
            ["scrub_freed_kv", "tenant_cache_salt"],
            audit,
        )


def test_the_control_reports_residue_without_refusing() -> None:
    records = run_checks(
        {"scrub_freed_kv": _residue, "tenant_cache_salt": _passes}, ["scrub_freed_kv", "tenant_cache_salt"]
    )
    by = {r.mitigation: r for r in records}
    assert not by["scrub_freed_kv"].passed and "canary still in" in (by["scrub_freed_kv"].found or "")
    assert by["tenant_cache_salt"].passed  # positive control


def test_only_passing_records_verify() -> None:
    facts = DeploymentFacts(deployment=Deployment(engine="vllm"))
    records = run_checks(
        {"scrub_freed_kv": _residue, "tenant_cache_salt": _passes}, ["scrub_freed_kv", "tenant_cache_salt"]
    )
    out = verified_facts(facts, records)
    assert out.runtime.mitigations_verified == ["tenant_cache_salt"]
    assert [r.mitigation for r in out.runtime.selftests] == ["scrub_freed_kv", "tenant_cache_salt"]


def test_the_budget_is_two_seconds_or_two_percent_of_the_start() -> None:
    assert budget_seconds(None) == 2.0
    assert budget_seconds(30.0) == 2.0
    assert budget_seconds(500.0) == pytest.approx(10.0)


def test_over_budget_warns_but_starts(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pccguard.enforcement.selftest as selftest

    monkeypatch.setattr(selftest, "BUDGET_FLOOR_SECONDS", 0.0)
    audit, _ = _audit()
    with caplog.at_level("WARNING", logger="pccguard.selftest"):
        outcome = require_verified(
            "vllm", {"scrub_freed_kv": _passes}, ["scrub_freed_kv"], audit, engine_start_seconds=0.0
        )
    assert outcome.verified == ["scrub_freed_kv"]
    assert "over their budget" in caplog.text
