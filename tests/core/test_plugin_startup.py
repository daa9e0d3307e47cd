"""The shared startup path of the serving plugins: mitigations chosen, denies refused, errors fail closed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from pccguard.enforcement.audit import AuditEvent, AuditKind, AuditLog
from pccguard.enforcement.config import PluginConfig, load_plugin_config
from pccguard.enforcement.decide import StartupDecision, decide_startup
from pccguard.enforcement.startup import evaluate_startup, refuse, refuse_on_error
from pccguard.errors import EnforcementError, InputError
from pccguard.evaluation.settings import PolicySettings
from pccguard.facts.load import facts_from_data
from pccguard.facts.model import DeploymentFacts
from tests.core.evaluations import count_evaluations

FACTS = {
    "deployment": {"name": "svc", "engine": "vllm"},
    "tenancy": {"mode": "multi", "identified_by": "header"},
    "optimizations": {"paging": {"enabled": True, "scrub_on_free": False}},
}


def audit_log() -> tuple[AuditLog, list[AuditEvent]]:
    events: list[AuditEvent] = []
    return AuditLog("vllm", sinks=[events.append]), events


def verdict_of(decision: StartupDecision, rule: str) -> str:
    return next(r.verdict.value for r in decision.report.results if r.id == rule)


def test_unmitigable_deny_refuses_to_start_naming_the_rules():
    log, events = audit_log()
    with pytest.raises(EnforcementError) as info:
        evaluate_startup("vllm", facts_from_data(FACTS), [], PluginConfig(), log)
    assert "PCC-S-001" in str(info.value) and "refuses to start vllm" in str(info.value)
    assert events[-1].kind == AuditKind.STARTUP_REFUSED and events[-1].reason == "deny_remains"


def test_installable_mitigation_is_chosen_and_recorded():
    log, _ = audit_log()
    config = PluginConfig(profile="multi-tenant-baseline", fail_on="critical")
    decision = evaluate_startup("vllm", facts_from_data(FACTS), ["scrub_freed_kv"], config, log)
    assert decision is not None and decision.allowed
    assert decision.install == ["scrub_freed_kv"]
    assert verdict_of(decision, "PCC-S-001") == "enforced"
    # Positive control: the same start with nothing installable leaves S-001 failing.
    control = evaluate_startup("vllm", facts_from_data(FACTS), [], config, log)
    assert control is not None and control.install == []
    assert verdict_of(control, "PCC-S-001") == "fail"


def test_policy_error_fails_closed(tmp_path):
    log, events = audit_log()
    config = PluginConfig(rules_dirs=[tmp_path / "missing"])
    with pytest.raises(EnforcementError) as info:
        evaluate_startup("vllm", facts_from_data(FACTS), [], config, log)
    assert "rules directory does not exist" in str(info.value)
    assert events[-1].reason == "policy_error"


def test_unreachable_opa_fails_closed_and_open_mode_is_explicit():
    log, events = audit_log()
    closed = PluginConfig(opa_url="http://127.0.0.1:9", opa_timeout=1)
    with pytest.raises(EnforcementError, match="unreachable"):
        evaluate_startup("vllm", facts_from_data(FACTS), [], closed, log)
    opened = PluginConfig(opa_url="http://127.0.0.1:9", opa_timeout=1, fail_mode="open")
    assert evaluate_startup("vllm", facts_from_data(FACTS), [], opened, log) is None
    assert events[-1].reason == "policy_error_fail_open"


def test_plugin_config_file_errors_name_the_line(tmp_path):
    path = tmp_path / "pccguard.yaml"
    path.write_text("profile: pcc-strict\nfail_mode: sometimes\n")
    with pytest.raises(InputError) as info:
        load_plugin_config({"PCCGUARD_CONFIG": str(path)})
    assert f"{path}:2" in info.value.one_line()
    assert load_plugin_config({}) == PluginConfig()


def test_audit_events_refuse_free_text():
    log, _ = audit_log()
    with pytest.raises(ValueError):
        log.emit(AuditKind.KV_SCRUBBED, reason="user asked: what is my password?")
    with pytest.raises(ValueError):
        log.emit(AuditKind.KV_SCRUBBED, prompt="hello")
    event = log.emit(AuditKind.CACHE_SALT_APPLIED, mitigation="tenant_cache_salt", tenant="acme")
    assert event.tenant_ref is not None and "acme" not in event.model_dump_json()
    assert log.counters()["cache_salt_applied/tenant_cache_salt"] == 1


# --------------------------------------------------------------------------- two evaluations per decision


def test_a_decision_evaluates_twice_and_judges_the_chosen_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once as configured, once with the chosen mitigations and what they determine (vLLM: the plan)."""
    seen = count_evaluations(monkeypatch)
    facts = facts_from_data(FACTS)
    chosen: list[list[str]] = []

    def chosen_facts(install: Sequence[str]) -> DeploymentFacts:
        chosen.append(list(install))
        return facts.model_copy(
            update={"deployment": facts.deployment.model_copy(update={"name": "planned"})}
        )

    policy = PluginConfig(profile="multi-tenant-baseline").policy_settings().open()
    decision = decide_startup(policy, facts, ["scrub_freed_kv"], chosen_facts=chosen_facts)
    assert len(seen) == 2 and chosen == [["scrub_freed_kv"]]
    first, second = (doc["facts"] for doc in seen.inputs)
    assert first["deployment"]["name"] == "svc" and first["runtime"]["mitigations_active"] == []
    assert second["deployment"]["name"] == "planned"
    assert second["runtime"]["mitigations_active"] == ["scrub_freed_kv"]
    assert decision.report.deployment["name"] == "planned"


def test_the_decision_carries_the_profile_parameters() -> None:
    facts = facts_from_data(FACTS)
    for profile, admin in (("multi-tenant-baseline", True), ("pcc-strict", False)):
        policy = PolicySettings(profile=profile, unknown_high_fails=False).open()
        decision = decide_startup(policy, facts, [])
        assert decision.params == policy.evaluator.profile.params
        assert decision.params.allow_authenticated_admin_endpoints is admin


# --------------------------------------------------------------------------- fault injection


def test_a_broken_profile_parameter_refuses_the_start(tmp_path: Path) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "name: mine\ndescription: a slip\nparams:\n  max_prefix_cache_ttl_seconds: '600'\n", encoding="utf-8"
    )
    log, events = audit_log()
    facts = facts_from_data(FACTS)
    with pytest.raises(EnforcementError) as info:
        evaluate_startup("vllm", facts, ["scrub_freed_kv"], PluginConfig(profile=str(profile)), log)
    assert "fail-closed" in str(info.value) and "max_prefix_cache_ttl_seconds" in str(info.value)
    assert events[-1].reason == "policy_error"
    # Positive control: the same start under a profile that loads is decided, not refused for an error.
    good = tmp_path / "good.yaml"
    good.write_text("name: mine\ndescription: fine\n", encoding="utf-8")
    with pytest.raises(EnforcementError, match="blocking finding"):
        evaluate_startup("vllm", facts, ["scrub_freed_kv"], PluginConfig(profile=str(good)), log)


def test_an_error_in_the_decision_refuses_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error raised while the policy runs (here: inside the real engine's evaluate) refuses the start."""
    import pccguard.evaluation.settings as settings_module

    real_build = settings_module.build_engine

    def build_engine(*args: object, **kwargs: object) -> object:
        engine = real_build(*args, **kwargs)  # type: ignore[arg-type]

        def evaluate(input_doc: object) -> object:
            raise RuntimeError("engine crashed")

        engine.evaluate = evaluate  # type: ignore[method-assign, assignment]
        return engine

    monkeypatch.setattr(settings_module, "build_engine", build_engine)
    log, events = audit_log()
    config = PluginConfig(profile="multi-tenant-baseline")
    with pytest.raises(EnforcementError, match=r"fail-closed.*internal error: RuntimeError: engine crashed"):
        evaluate_startup("vllm", facts_from_data(FACTS), ["scrub_freed_kv"], config, log)
    assert events[-1].reason == "internal_error"


def test_errors_before_the_policy_refuse_whatever_the_fail_mode() -> None:
    log, events = audit_log()
    with pytest.raises(
        EnforcementError, match=r"refuses to start vllm \(fail-closed\): internal error: OSError"
    ):
        refuse("vllm", log, OSError("key file unreadable"))
    with pytest.raises(EnforcementError, match="fail-closed"):
        refuse_on_error("vllm", None, log, InputError("no configuration"))
    assert [e.reason for e in events] == ["internal_error", "policy_error"]
    # Positive control: the policy stage is the one ``fail_mode: open`` may let through.
    refuse_on_error("vllm", PluginConfig(fail_mode="open"), log, InputError("rule broke"))
    assert events[-1].reason == "policy_error_fail_open"
