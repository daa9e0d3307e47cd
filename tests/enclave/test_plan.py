"""The partition plan and its checker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pccguard.enclave_runtime.plan import (
    ALL_OPS,
    PartitionPlan,
    PlanError,
    PrivacySpec,
    all_enclave_plan,
    check_plan,
    default_plan,
    insecure_obfuscation_plan,
    load_plan,
    plan_facts,
)
from pccguard.errors import InputError

MODE_P = PrivacySpec(deltas=frozenset({(0, "qkv"), (0, "down"), (1, "o")}))


def _with(plan: PartitionPlan, **changes: str) -> PartitionPlan:
    data = plan.to_dict()
    data["default"].update({k.replace("__", "."): v for k, v in changes.items()})
    return PartitionPlan.from_dict(data)


def test_default_plan_places_ops_as_the_notes_say() -> None:
    plan = default_plan()
    findings = check_plan(plan, MODE_P, n_layers=2)
    offloaded = {f.op for f in findings if f.placement != "enclave"}
    assert offloaded == {"qkv.base", "o.base", "gate_up.base", "down.base", "lm_head.base"}
    assert all(plan.placement(op) == "enclave" for op, kind in ALL_OPS.items() if kind != "linear_base")
    assert plan.integrity == "freivalds"
    check_plan(all_enclave_plan(), MODE_P, n_layers=2)


def test_private_delta_sent_unblinded_is_rejected_in_one_line() -> None:
    plan = _with(default_plan(), qkv__delta="offload_clear")
    with pytest.raises(PlanError) as err:
        check_plan(plan, MODE_P, n_layers=2)
    assert isinstance(err.value, InputError)
    text = str(err.value)
    assert "\n" not in text
    assert "layers.0.qkv.delta" in text and "private weight" in text and "unblinded" in text


def test_blinding_does_not_hide_a_private_weight() -> None:
    plan = _with(default_plan(), down__delta="offload_blinded")
    with pytest.raises(PlanError, match="private weight"):
        check_plan(plan, MODE_P, n_layers=2)


def test_mode_f_base_must_stay_in_the_enclave() -> None:
    private = PrivacySpec(base_private=True, embed_private=True, lm_head_private=True)
    with pytest.raises(PlanError, match=r"qkv.base"):
        check_plan(default_plan(), private, n_layers=2)
    check_plan(all_enclave_plan(), private, n_layers=2)


def test_clear_offload_needs_public_weight_and_public_data() -> None:
    plan = _with(default_plan(), qkv__base="offload_clear")
    with pytest.raises(PlanError, match="private activation"):
        check_plan(plan, MODE_P, n_layers=2)
    public = PrivacySpec(protect_prompts=False)  # public model, public prompts
    check_plan(plan, public, n_layers=2)
    # ... but only until a private delta has touched the activations
    with pytest.raises(PlanError, match=r"layers.1.qkv.base"):
        check_plan(plan, PrivacySpec(protect_prompts=False, deltas=frozenset({(0, "down")})), n_layers=2)


def test_nonlinear_ops_cannot_be_offloaded() -> None:
    with pytest.raises(PlanError, match="non-linear"):
        check_plan(_with(default_plan(), attention="offload_blinded"), MODE_P, n_layers=2)


def test_insecure_plan_needs_explicit_consent() -> None:
    with pytest.raises(PlanError, match="INSECURE"):
        check_plan(insecure_obfuscation_plan(), MODE_P, n_layers=2)
    check_plan(insecure_obfuscation_plan(), MODE_P, n_layers=2, allow_insecure=True)


def test_layer_overrides_and_structure_errors() -> None:
    data = default_plan().to_dict()
    data["layers"] = {"1": {"o.delta": "offload_clear"}}
    with pytest.raises(PlanError, match=r"layers.1.o.delta"):
        check_plan(PartitionPlan.from_dict(data), MODE_P, n_layers=2)
    data["layers"] = {"5": {"o.base": "enclave"}}
    with pytest.raises(PlanError, match="outside"):
        check_plan(PartitionPlan.from_dict(data), MODE_P, n_layers=2)
    bad = default_plan().to_dict()
    bad["default"]["softmax_on_gpu"] = "enclave"
    with pytest.raises(PlanError, match="unknown ops"):
        check_plan(PartitionPlan.from_dict(bad), MODE_P, n_layers=2)
    bad = default_plan().to_dict()
    bad["default"]["o.base"] = "gpu"
    with pytest.raises(PlanError, match="unknown placement"):
        check_plan(PartitionPlan.from_dict(bad), MODE_P, n_layers=2)


def test_plan_files_and_digest(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(default_plan().to_dict()))
    loaded = load_plan(path)
    assert loaded.digest() == default_plan().digest()
    yaml_path = tmp_path / "plan.yaml"
    yaml_path.write_text("name: tiny\ndefault:\n" + "".join(f"  {op}: enclave\n" for op in ALL_OPS))
    assert load_plan(yaml_path).name == "tiny"
    assert default_plan().digest() != all_enclave_plan().digest()


def test_plan_facts_for_a_rule() -> None:
    facts = plan_facts(default_plan(), MODE_P, n_layers=2)
    assert facts["private_unblinded_offloads"] == 0 and facts["violations"] == []
    assert facts["ops_offloaded"] == 2 * 4 + 1 and facts["integrity_check"] == "freivalds"
    leaky = plan_facts(_with(default_plan(), qkv__delta="offload_clear"), MODE_P, n_layers=2)
    assert leaky["private_unblinded_offloads"] == 1
    insecure = plan_facts(insecure_obfuscation_plan(), MODE_P, n_layers=2)
    assert insecure["insecure_obfuscation"] and insecure["private_obfuscated_offloads"] == 3


def test_core_facts_patch_validates_against_the_facts_model() -> None:
    from pccguard.enclave_runtime.facts import core_facts_patch
    from pccguard.facts.model import DeploymentFacts

    patch = core_facts_patch(default_plan(), MODE_P, n_layers=2, attested=True)
    facts = DeploymentFacts.model_validate({"deployment": {"engine": "vllm"}, **patch})
    assert facts.runtime.mitigations_active == ["hybrid_executor"]
    assert facts.model.private_adapters and facts.model.accelerator_trusted is False
    insecure = core_facts_patch(insecure_obfuscation_plan(), MODE_P, n_layers=2, attested=True)
    assert insecure["runtime"]["mitigations_active"] == []  # a broken scheme enforces nothing


def test_plan_is_held_to_the_rulebook() -> None:
    """PCC-E-011, evaluated by pccguard's engine, accepts the default plan and refuses leaky ones."""
    from pccguard.enclave_runtime.facts import check_plan_against_rules

    check_plan_against_rules(default_plan(), MODE_P, n_layers=2)  # positive control
    with pytest.raises(PlanError, match=r"PCC-E-011.*unblinded"):
        check_plan_against_rules(_with(default_plan(), qkv__delta="offload_clear"), MODE_P, n_layers=2)
    with pytest.raises(PlanError, match=r"PCC-E-011.*obfuscation"):
        check_plan_against_rules(insecure_obfuscation_plan(), MODE_P, n_layers=2)
