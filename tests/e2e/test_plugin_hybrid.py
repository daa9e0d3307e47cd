"""The plugin selects the enclave executor when a rule requires ``hybrid_executor``, and only then.

PCC-E-010 fails for private weights on an untrusted accelerator and names
``hybrid_executor`` as its mitigation. With the model declared private, the
plugin must switch the engine to pccguard's executor (all-enclave plan: a
private base never leaves the enclave) and the real EngineCore must then
produce the enclave runtime's reference tokens. Where it cannot install the
executor (switched off, another executor named, a plan that would expose the
weights) the start is refused, naming the rule.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from vllm.engine.arg_utils import EngineArgs

from pccguard.adapters.vllm.runtime.plan import PLAN_KEY
from pccguard.enclave_runtime.plan import all_enclave_plan
from pccguard.enclave_runtime.vllm_executor import EXECUTOR_QUALNAME
from pccguard.enclave_runtime.vllm_executor.executor import EnclaveExecutor
from pccguard.errors import EnforcementError
from tests.e2e.support import generate, make_engine, reference, request

BASE = "profile: multi-tenant-baseline\nfail_on: high\n"
PRIVATE = BASE + "model: {weights: private, accelerator_trusted: false}\n"


def _config(model: Path, **overrides: Any) -> Any:
    args: dict[str, Any] = dict(
        model=str(model), skip_tokenizer_init=True, enable_prefix_caching=True, max_model_len=256
    )
    args.update(overrides)
    return EngineArgs(**args).create_engine_config()


def test_private_weights_select_the_enclave_executor(tiny_llama: Path, plugin_config: Any) -> None:
    plugin_config(PRIVATE)
    engine = make_engine(tiny_llama, distributed_executor_backend=None)
    try:
        plan = engine.vllm_config.additional_config[PLAN_KEY]
        assert engine.vllm_config.parallel_config.distributed_executor_backend == EXECUTOR_QUALNAME
        assert isinstance(engine.model_executor, EnclaveExecutor)
        assert "hybrid_executor" in plan["install"]
        assert plan["enclave"] == {"plan": "all-enclave", "private_base": True}
        assert engine.model_executor.worker.enclave.plan.name == "all-enclave"
        rng = random.Random(3)
        prompts = [[rng.randrange(3, 500) for _ in range(n)] for n in (9, 37)]
        got = generate(engine, [request(f"r{i}", p, max_tokens=4) for i, p in enumerate(prompts)])
    finally:
        engine.shutdown()
    assert [got[f"r{i}"] for i in range(len(prompts))] == reference(
        tiny_llama, all_enclave_plan(), prompts, 4
    )


def test_public_weights_leave_the_executor_alone(tiny_llama: Path, plugin_config: Any) -> None:
    """The positive control: nothing requires the executor, so the plugin does not impose its cost."""
    plugin_config(BASE + "model: {weights: public, accelerator_trusted: false}\n")
    config = _config(tiny_llama)
    assert config.parallel_config.distributed_executor_backend != EXECUTOR_QUALNAME
    assert "hybrid_executor" not in config.additional_config[PLAN_KEY]["install"]
    assert config.additional_config[PLAN_KEY]["enclave"] is None


def test_executor_named_by_hand_is_recorded_with_its_plan(tiny_llama: Path, plugin_config: Any) -> None:
    plugin_config(BASE + "model: {weights: public}\n")
    config = _config(tiny_llama, distributed_executor_backend=EXECUTOR_QUALNAME)
    plan = config.additional_config[PLAN_KEY]
    assert "hybrid_executor" in plan["install"]
    assert plan["enclave"] == {"plan": "default", "private_base": False}


@pytest.mark.parametrize(
    ("extra", "overrides", "expected"),
    [
        ("mitigations: {hybrid_executor: false}\n", {}, "PCC-E-010"),
        ("", {"distributed_executor_backend": "mp"}, "PCC-E-010"),
        ("mitigations: {hybrid_executor_plan: default}\n", {}, "PCC-E-011"),
    ],
    ids=["switched-off", "other-executor", "plan-exposes-weights"],
)
def test_refused_when_the_weights_cannot_be_protected(
    tiny_llama: Path, plugin_config: Any, extra: str, overrides: dict[str, Any], expected: str
) -> None:
    plugin_config(PRIVATE + extra)
    with pytest.raises(EnforcementError) as caught:
        _config(tiny_llama, **overrides)
    message = caught.value.one_line()
    assert message.startswith("pccguard refuses to start vllm") and expected in message
