"""One policy-settings object: ``pccguard check`` and the serving plugins load the same policy the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from pccguard.cli import _policy_settings, build_parser
from pccguard.enforcement.config import PluginConfig
from pccguard.errors import InputError
from pccguard.evaluation.settings import PolicySettings
from pccguard.facts.load import facts_from_data
from pccguard.policy.engines.limits import EvalLimits
from tests.core.evaluations import count_evaluations

FACTS = {
    "deployment": {"name": "svc", "engine": "vllm"},
    "optimizations": {"paging": {"enabled": True, "scrub_on_free": False}},
}
WAIVER = (
    "waivers:\n  - rule: {rule}\n    scope: '*'\n    justification: scrubbed by the hypervisor on release\n"
    "    owner: platform\n    expires: 2999-01-01\n"
)


def test_cli_arguments_and_plugin_config_give_the_same_settings(tmp_path: Path) -> None:
    rules, waivers = tmp_path / "rules", tmp_path / "waivers.yaml"
    argv = ["check", "facts.yaml", "--profile", "multi-tenant-baseline", "--rules", str(rules)]
    argv += ["--waivers", str(waivers), "--fail-on", "high", "--opa-url", "https://opa.internal:8181"]
    argv += ["--opa-token-env", "MY_TOKEN", "--opa-timeout", "3"]
    from_cli = _policy_settings(build_parser().parse_args(argv))
    from_plugin = PluginConfig(
        profile="multi-tenant-baseline",
        rules_dirs=[rules],
        waivers=waivers,
        fail_on="high",
        opa_url="https://opa.internal:8181",
        opa_token_env="MY_TOKEN",
        opa_timeout=3,
    ).policy_settings()
    assert from_cli.limits == EvalLimits()
    # The one difference is the start decision's rule for unknown facts (Evaluator.unknown_high_fails).
    assert (from_cli.unknown_high_fails, from_plugin.unknown_high_fails) == (True, False)
    assert from_cli == PolicySettings(
        **{**vars(from_plugin), "unknown_high_fails": True, "limits": EvalLimits()}
    )


def test_waivers_are_loaded_with_the_policy_and_applied(tmp_path: Path) -> None:
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(WAIVER.format(rule="PCC-S-001"), encoding="utf-8")
    facts = facts_from_data(FACTS)
    waived = PolicySettings(waivers=waivers).open().evaluate(facts)
    plain = PolicySettings().open().evaluate(facts)  # positive control: without the file S-001 fails
    assert next(r.verdict.value for r in plain.results if r.id == "PCC-S-001") == "fail"
    assert next(r.verdict.value for r in waived.results if r.id == "PCC-S-001") == "waived"


def test_a_waiver_for_an_unknown_rule_is_a_problem_not_a_waiver(tmp_path: Path) -> None:
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(WAIVER.format(rule="PCC-X-999"), encoding="utf-8")
    report = PolicySettings(waivers=waivers).open().evaluate(facts_from_data(FACTS))
    assert report.problems and "PCC-X-999" in " ".join(report.problems)
    assert not any(r.verdict.value == "waived" for r in report.results)


def test_fail_on_is_carried_into_the_report() -> None:
    facts = facts_from_data(FACTS)
    assert PolicySettings(fail_on="critical").open().evaluate(facts).fail_on == "critical"
    with pytest.raises(InputError, match="fail_on"):
        PolicySettings(fail_on="severe")


def test_the_opa_token_is_read_from_the_named_variable_and_never_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_TOKEN", "s3cret-token-value")
    settings = PolicySettings(opa_url="https://opa.internal:8181", opa_token_env="MY_TOKEN")
    assert "s3cret" not in repr(settings)
    engine = settings.evaluator().engine
    assert engine.name.startswith("opa") and "s3cret" not in repr(engine)
    assert settings._opa_token() == "s3cret-token-value"
    assert PolicySettings(opa_token_env="MY_TOKEN")._opa_token() is None  # no server: nothing is read


def test_one_evaluation_per_evaluate_call_on_the_real_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_evaluations(monkeypatch)
    report = PolicySettings().open().evaluate(facts_from_data(FACTS))
    assert len(seen) == 1 and seen.inputs[0]["facts"]["deployment"]["name"] == "svc"
    assert set(seen.decisions[0]["applicable"]) and report.results
