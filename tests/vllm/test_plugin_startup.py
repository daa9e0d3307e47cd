"""vLLM's start path: at most two evaluations, the hybrid plan judged in the second, every error refuses.

The evaluations are counted on the real embedded engine the start builds
(``tests.core.evaluations`` wraps that instance's ``evaluate``); the
configurations are real ``VllmConfig`` objects resolved through
``EngineArgs.create_engine_config``, where the plugin's hook runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from vllm.engine.arg_utils import EngineArgs
from vllm.v1.engine.core import EngineCore

import pccguard.adapters.vllm.facts as vllm_facts
from pccguard.adapters.vllm.runtime.plan import PLAN_KEY, RuntimePlan
from pccguard.enclave_runtime.synthetic import describe_llama
from pccguard.errors import EnforcementError
from tests.core.evaluations import count_evaluations
from tests.vllm.support import CpuTestExecutor, make_engine

BASELINE = "profile: multi-tenant-baseline\n"
HYBRID = BASELINE + "fail_on: high\n"
PRIVATE = HYBRID + "model: {weights: private, accelerator_trusted: false}\n"
PUBLIC = HYBRID + "model: {weights: public, accelerator_trusted: false}\n"


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny 2-layer model, naming its architecture (the enclave executor serves LLaMA decoders only)."""
    return describe_llama(tmp_path_factory.mktemp("tiny-llama-arch"), architectures=["LlamaForCausalLM"])


def _config(model: Path, **overrides: Any) -> Any:
    """A resolved configuration, the plugin's decision included (no engine is started)."""
    args: dict[str, Any] = dict(
        model=str(model), skip_tokenizer_init=True, enable_prefix_caching=True, max_model_len=256
    )
    args.update(overrides)
    return EngineArgs(**args).create_engine_config()


def _e011(decision: dict[str, Any]) -> tuple[bool, list[Any]]:
    """Whether PCC-E-011 applied in an engine decision, and what it denied."""
    return bool(decision["applicable"].get("pcc_e_011")), list(decision["deny"].get("pcc_e_011", []))


# --------------------------------------------------------------------------- two evaluations per start


def test_a_vllm_start_evaluates_twice(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole start: the configuration hook decides, the engine core reads the plan, nothing re-evaluates."""
    plugin_config(BASELINE)
    seen = count_evaluations(monkeypatch)
    engine = make_engine(tiny_model)
    try:
        installed = engine.vllm_config.additional_config[PLAN_KEY]["install"]
        assert type(engine.scheduler).__name__ == "PccguardScheduler"
    finally:
        engine.shutdown()
    assert len(seen) == 2
    first, second = (doc["facts"]["runtime"] for doc in seen.inputs)
    assert first["mitigations_active"] == [] and second["mitigations_active"] == sorted(installed)
    assert {"scrub_freed_kv", "tenant_cache_salt", "prefix_cache_ttl"} <= set(installed)


def test_the_hybrid_plan_is_judged_in_the_second_evaluation(
    llama: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_config(PRIVATE)
    seen = count_evaluations(monkeypatch)
    config = _config(llama)
    plan = config.additional_config[PLAN_KEY]
    assert "hybrid_executor" in plan["install"] and plan["enclave"]["plan"] == "all-enclave"
    assert len(seen) == 2
    first, second = (doc["facts"]["model"] for doc in seen.inputs)
    assert first.get("hybrid_plan") is None and second["hybrid_plan"]["plan"] == "all-enclave"
    assert _e011(seen.decisions[0]) == (False, []) and _e011(seen.decisions[1]) == (True, [])


def test_a_plan_that_exposes_the_weights_is_refused_in_the_second_evaluation(
    llama: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_config(PRIVATE + "mitigations: {hybrid_executor_plan: default}\n")
    seen = count_evaluations(monkeypatch)
    with pytest.raises(EnforcementError) as caught:
        _config(llama)
    assert "PCC-E-011" in caught.value.one_line() and len(seen) == 2
    applied, denied = _e011(seen.decisions[1])
    assert applied and denied and seen.inputs[1]["facts"]["model"]["hybrid_plan"]["plan"] == "mode-p-default"


def test_public_weights_judge_no_plan(
    llama: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The positive control of the two above: without the executor chosen, PCC-E-011 sees no plan."""
    plugin_config(PUBLIC)
    seen = count_evaluations(monkeypatch)
    config = _config(llama)
    assert "hybrid_executor" not in config.additional_config[PLAN_KEY]["install"]
    assert len(seen) == 2 and all(doc["facts"]["model"].get("hybrid_plan") is None for doc in seen.inputs)


# --------------------------------------------------------------------------- fault injection


def test_an_error_in_a_fact_collector_refuses_even_in_fail_open_mode(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No check ran at all: ``fail_mode: open`` covers errors of the policy, not facts that were never built."""
    plugin_config(BASELINE + "fail_mode: open\n")
    assert "scrub_freed_kv" in _config(tiny_model).additional_config[PLAN_KEY]["install"]  # positive control

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("collector exploded")

    monkeypatch.setattr(vllm_facts, "facts_from_config", broken)
    with pytest.raises(EnforcementError, match=r"fail-closed.*RuntimeError: collector exploded"):
        _config(tiny_model)


@pytest.mark.parametrize("content", [None, "not-a-digest: alice\n"], ids=["missing", "malformed"])
def test_an_unreadable_key_file_refuses_the_start(
    tiny_model: Path, plugin_config: Any, tmp_path: Path, content: str | None
) -> None:
    keys = tmp_path / "keys.yaml"
    tenancy = f"tenancy: {{identified_by: api_key, api_keys_file: '{keys}'}}\n"
    plugin_config(BASELINE + "fail_mode: open\n" + tenancy)
    keys.write_text(f"{hashlib.sha256(b'k1').hexdigest()}: alice\n", encoding="utf-8")
    assert _config(tiny_model).additional_config[PLAN_KEY]["install"]  # positive control: a good file starts
    if content is None:
        keys.unlink()
    else:
        keys.write_text(content, encoding="utf-8")
    with pytest.raises(EnforcementError, match=r"refuses to start vllm \(fail-closed\)"):
        _config(tiny_model)


@pytest.mark.parametrize("mode", ["", "fail_mode: open\n"], ids=["fail-closed", "even-fail-open"])
def test_an_unreadable_plan_file_refuses(llama: Path, plugin_config: Any, tmp_path: Path, mode: str) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{not json", encoding="utf-8")
    plugin_config(PRIVATE + mode + f"mitigations: {{hybrid_executor_plan: '{bad}'}}\n")
    with pytest.raises(EnforcementError, match=r"fail-closed.*cannot parse plan"):
        _config(llama)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda plan: plan.pop("install"), "no install list"),
        (lambda plan: plan.update(ttl_seconds=None), "prefix_cache_ttl is installed without ttl_seconds"),
        (lambda plan: plan.update(install="scrub_freed_kv"), "install must be a list of strings"),
        (lambda plan: plan.update(surprise=True), "unknown keys"),
    ],
    ids=["no-install", "ttl-without-lifetime", "install-not-a-list", "unknown-key"],
)
def test_a_malformed_plan_refuses_the_engine_core(
    tiny_model: Path, plugin_config: Any, corrupt: Any, expected: str
) -> None:
    """The plan reaches the engine core inside the configuration; a broken one never means "install nothing"."""
    plugin_config(BASELINE)
    config = _config(tiny_model, num_gpu_blocks_override=40, distributed_executor_backend=CpuTestExecutor)
    plan = config.additional_config[PLAN_KEY]
    assert RuntimePlan.from_dict(plan).has("prefix_cache_ttl")  # positive control: the plan as written reads
    corrupt(plan)
    with pytest.raises(EnforcementError, match=f"plan in additional_config.*malformed.*{expected}"):
        EngineCore(config, CpuTestExecutor, log_stats=False)
