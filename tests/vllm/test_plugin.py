"""The entry point and startup enforcement: refuse on a deny, refuse on pccguard's own errors, configure otherwise."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from vllm.exceptions import VLLMValidationError
from vllm.v1.engine.core import EngineCore

import pccguard.enforcement.startup as startup_module
from pccguard.adapters.vllm.runtime import hooks, targets
from pccguard.adapters.vllm.runtime.audit import replace_audit_log
from pccguard.adapters.vllm.runtime.plan import PLAN_KEY
from pccguard.enforcement.audit import AuditEvent, AuditKind, AuditLog
from pccguard.enforcement.patching import is_patched
from pccguard.errors import EnforcementError
from tests.cpu_vllm import tenant_token
from tests.vllm.support import CpuTestExecutor, make_engine

BASELINE = "profile: multi-tenant-baseline\n"


@pytest.fixture
def events() -> Any:
    collected: list[AuditEvent] = []
    previous = replace_audit_log(AuditLog("vllm", sinks=[collected.append]))
    yield collected
    replace_audit_log(previous)


def test_entry_point_is_registered_and_idempotent() -> None:
    eps = importlib.metadata.entry_points(group="vllm.general_plugins")
    ours = [ep for ep in eps if ep.name == "pccguard"]
    assert ours and ours[0].value == "pccguard.plugins.vllm:register"
    register = ours[0].load()
    register()
    register()  # a second call in the same process changes nothing
    from vllm.engine.arg_utils import EngineArgs

    assert is_patched(targets.CREATE_ENGINE_CONFIG, hooks.CONFIG.hook)
    assert not hasattr(EngineArgs.create_engine_config.__wrapped__, "__wrapped__"), "wrapped exactly once"


PROBE = """
from vllm.plugins import load_general_plugins
from pccguard.adapters.vllm.runtime import hooks, targets
from pccguard.enforcement.patching import is_patched
load_general_plugins()
print("hooked" if is_patched(targets.CREATE_ENGINE_CONFIG, hooks.CONFIG.hook) else "plain")
"""


@pytest.mark.parametrize(
    ("allow", "expected"), [("someone-else", "plain"), ("pccguard", "hooked"), (None, "hooked")]
)
def test_vllm_plugins_allowlist_is_respected(allow: str | None, expected: str) -> None:
    """vLLM caches its environment once an engine starts, so each case runs in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "VLLM_PLUGINS"}
    if allow is not None:
        env["VLLM_PLUGINS"] = allow
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == expected


def test_configures_the_engine(tiny_model: Path, plugin_config: Any, events: list[AuditEvent]) -> None:
    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    config = engine.vllm_config
    assert type(engine.scheduler).__name__ == "PccguardScheduler"
    assert config.parallel_config.worker_extension_cls.endswith("PccguardWorkerExtension")
    installed = config.additional_config[PLAN_KEY]["install"]
    assert {"scrub_freed_kv", "tenant_cache_salt", "prefix_cache_ttl"} <= set(installed)
    kinds = {(e.kind, e.mitigation) for e in events}
    assert (AuditKind.MITIGATION_INSTALLED, "scrub_freed_kv") in kinds
    assert any(e.kind == AuditKind.POLICY_EVALUATED for e in events)


def test_refuses_a_deny_with_the_rules_listed(
    tiny_model: Path, plugin_config: Any, events: list[AuditEvent]
) -> None:
    plugin_config(BASELINE)
    with pytest.raises(EnforcementError) as caught:
        make_engine(tiny_model, kv_events_config={"enable_kv_cache_events": True, "publisher": "null"})
    message = caught.value.one_line()
    assert message.startswith("pccguard refuses to start vllm")
    assert "PCC-P-004" in message and "PCC-S-019" in message
    refused = [e for e in events if e.kind == AuditKind.STARTUP_REFUSED]
    assert refused and "PCC-P-004" in refused[0].rule_ids


def test_refuses_on_an_internal_error(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch, events: list[AuditEvent]
) -> None:
    plugin_config(BASELINE)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("policy engine exploded")

    monkeypatch.setattr(startup_module, "decide_startup", broken)
    with pytest.raises(EnforcementError, match=r"fail-closed.*internal error.*policy engine exploded"):
        make_engine(tiny_model)
    assert any(e.kind == AuditKind.STARTUP_REFUSED and e.reason == "internal_error" for e in events)


def test_refuses_on_a_broken_configuration_file(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config("profile: pcc-strict\nfail_mode: sometimes\n")
    with pytest.raises(EnforcementError, match="fail-closed"):
        make_engine(tiny_model)


def test_refuses_a_foreign_scheduler(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(BASELINE)
    with pytest.raises(EnforcementError, match="scheduler-cls"):
        make_engine(tiny_model, scheduler_cls="vllm.v1.core.sched.scheduler.Scheduler")


def test_engine_core_refuses_a_config_built_around_the_plugin(tiny_model: Path, plugin_config: Any) -> None:
    """A configuration that names pccguard's scheduler but skipped the check is checked by the scheduler itself."""
    plugin_config("enabled: false\n")
    from vllm.engine.arg_utils import EngineArgs

    config = EngineArgs(
        model=str(tiny_model),
        skip_tokenizer_init=True,
        max_model_len=512,
        num_gpu_blocks_override=40,
        distributed_executor_backend=CpuTestExecutor,
        kv_events_config={"enable_kv_cache_events": True, "publisher": "null"},
        scheduler_cls="pccguard.adapters.vllm.runtime.scheduler.PccguardScheduler",
    ).create_engine_config()
    plugin_config(BASELINE)
    with pytest.raises(EnforcementError, match="PCC-P-004"):
        EngineCore(config, CpuTestExecutor, log_stats=False)


def test_disabled_plugin_leaves_vllm_alone(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config("enabled: false\n")
    engine = make_engine(tiny_model)
    assert type(engine.scheduler).__name__ == "Scheduler"
    assert PLAN_KEY not in engine.vllm_config.additional_config


def test_fail_open_starts_without_mitigations(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch, events: list[AuditEvent]
) -> None:
    """``fail_mode: open`` is the operator's explicit choice: an internal error no longer blocks the start."""
    plugin_config(BASELINE + "fail_mode: open\n")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("policy engine exploded")

    monkeypatch.setattr(startup_module, "decide_startup", broken)
    engine = make_engine(tiny_model)
    assert engine.vllm_config.additional_config[PLAN_KEY]["install"] == []
    assert engine.vllm_config.additional_config[PLAN_KEY]["fail_mode"] == "open"
    assert any(e.reason == "internal_error_fail_open" for e in events)


def test_audit_events_carry_no_salts_or_tenants(
    tiny_model: Path, plugin_config: Any, events: list[AuditEvent]
) -> None:
    from tests.vllm.support import add, request, run_until_idle

    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    for i in range(2):
        add(engine, request(f"R{i}", list(range(200, 240)), salt=tenant_token("alice"), max_tokens=3))
        run_until_idle(engine)
    with pytest.raises(VLLMValidationError):  # no salt: refused, and counted
        add(engine, request("R2", list(range(200, 240)), max_tokens=3))
    assert engine.reset_prefix_cache() is True
    run_until_idle(engine)
    kinds = {e.kind for e in events}
    assert {AuditKind.CACHE_SALT_APPLIED, AuditKind.KV_SCRUBBED, AuditKind.MITIGATION_INSTALLED} <= kinds
    scrubbed = sum(e.count for e in events if e.kind == AuditKind.KV_SCRUBBED)
    assert scrubbed > 0
    text = " ".join(e.model_dump_json(exclude={"ts"}) for e in events)
    assert "alice" not in text and "pcs1-" not in text and "pcm1." not in text
    assert any(e.kind == AuditKind.REQUEST_REFUSED and e.reason == "salt_missing" for e in events)
    # no token ids: a run of the prompt's ids as any JSON list would spell them (hex refs have no commas)
    assert "200,201" not in text.replace(" ", "") and "238,239" not in text.replace(" ", "")
