"""The shared startup path of the serving plugins: mitigations chosen, denies refused, errors fail closed."""

from __future__ import annotations

import pytest

from pccguard.enforcement.audit import AuditEvent, AuditKind, AuditLog
from pccguard.enforcement.config import PluginConfig, load_plugin_config
from pccguard.enforcement.startup import evaluate_startup
from pccguard.errors import EnforcementError, InputError
from pccguard.facts.load import facts_from_data

FACTS = {
    "deployment": {"name": "svc", "engine": "vllm"},
    "tenancy": {"mode": "multi", "identified_by": "header"},
    "optimizations": {"paging": {"enabled": True, "scrub_on_free": False}},
}


def audit_log() -> tuple[AuditLog, list[AuditEvent]]:
    events: list[AuditEvent] = []
    return AuditLog("vllm", sinks=[events.append]), events


def test_unmitigable_deny_refuses_to_start_naming_the_rules():
    log, events = audit_log()
    with pytest.raises(EnforcementError) as info:
        evaluate_startup("vllm", facts_from_data(FACTS), [], PluginConfig(), log)
    assert "PCC-S-001" in str(info.value) and "refuses to start vllm" in str(info.value)
    assert events[-1].kind == AuditKind.STARTUP_REFUSED and events[-1].reason == "deny_remains"


def test_installable_mitigation_is_chosen_and_recorded():
    log, _ = audit_log()
    config = PluginConfig(profile="multi-tenant-baseline", fail_on="critical")
    try:
        decision = evaluate_startup("vllm", facts_from_data(FACTS), ["scrub_freed_kv"], config, log)
    except EnforcementError as exc:  # other rules may still block under this config; S-001 must not
        assert "PCC-S-001" not in str(exc)
        return
    assert decision is not None
    assert "scrub_freed_kv" in decision.install
    verdict = next(r for r in decision.report.results if r.id == "PCC-S-001")
    assert verdict.verdict.value == "enforced"


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
