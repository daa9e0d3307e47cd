"""The embedded engine fails closed: every failure is an ``error`` verdict or a clean error, never ``pass``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pccguard.errors import EngineError, RuleError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import Verdict
from pccguard.facts.load import facts_from_data
from pccguard.policy.engines.base import validate_decision_document
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.profiles import load_profile
from pccguard.policy.rulebook import load_rulebook

HEADER = """\
# METADATA
# title: Test rule
# description: A rule used to probe engine failure handling.
# custom:
#   id: TEST-S-001
#   requirement: S
#   optimization: paging
#   severity: high
#   threats: [residue]
#   references: ["NIST SP 800-53 SC-4"]
#   mitigation: scrub_freed_kv
#   message: "test finding {value}"
package pcc.rules.test_s_001

import data.pcc.lib
import rego.v1
"""

FACTS = {
    "deployment": {"engine": "vllm"},
    "optimizations": {"paging": {"enabled": True, "scrub_on_free": True}},
}


def evaluate_with(tmp_path: Path, body: str):
    (tmp_path / "test_s_001.rego").write_text(HEADER + body, encoding="utf-8")
    rulebook = load_rulebook([tmp_path])
    evaluator = Evaluator(rulebook, load_profile("pcc-strict", rulebook), EmbeddedEngine(rulebook.modules()))
    report = evaluator.evaluate(facts_from_data(FACTS))
    return next(r for r in report.results if r.id == "TEST-S-001"), report


def test_positive_control_rule_passes_and_fails(tmp_path):
    passing, _ = evaluate_with(tmp_path, "default applicable := true\ndeny contains {} if false\n")
    assert passing.verdict == Verdict.PASS
    failing, _ = evaluate_with(
        tmp_path, 'default applicable := true\ndeny contains lib.finding("x", {"value": 7}) if true\n'
    )
    assert failing.verdict == Verdict.FAIL
    assert failing.findings[0].message == "test finding 7"


def test_missing_applicable_is_an_error_not_a_pass(tmp_path):
    result, _ = evaluate_with(tmp_path, "deny contains {} if false\n")
    assert result.verdict == Verdict.ERROR
    assert "no decision" in (result.reason or "")


def test_unsupported_builtin_is_an_error_not_undefined(tmp_path):
    body = 'default applicable := true\ndeny contains {"fact": "x"} if {\n\tnet.cidr_contains("10.0.0.0/8", "10.1.1.1")\n}\n'
    result, report = evaluate_with(tmp_path, body)
    assert result.verdict == Verdict.ERROR
    assert report.exit_code() == 2
    assert "rule evaluation failed" in (result.reason or "")
    others = {r.verdict for r in report.results if r.id != "TEST-S-001"}
    assert Verdict.ERROR not in others, "a faulty rule is isolated: the others still get real verdicts"
    assert any("test_s_001" in p for p in report.problems)


def test_runtime_type_error_in_builtin_is_an_error(tmp_path):
    body = 'default applicable := true\ndeny contains {"fact": "x"} if {\n\tcount(5) > 0\n}\n'
    result, _ = evaluate_with(tmp_path, body)
    assert result.verdict == Verdict.ERROR


def test_compile_error_is_a_rule_error_with_location(tmp_path):
    with pytest.raises(RuleError) as info:
        evaluate_with(tmp_path, "default applicable := true\ndeny contains x if {\n\tx := \n}\n")
    assert "test_s_001.rego:" in info.value.one_line()


def test_engine_raising_gives_error_verdicts_for_all_rules():
    class BrokenEngine:
        """A stand-in engine that always fails, to test the evaluator's handling."""

        name = "broken"

        def evaluate(self, input_doc):
            raise EngineError("simulated engine failure")

    rulebook = load_rulebook()
    report = Evaluator(rulebook, load_profile("pcc-strict", rulebook), BrokenEngine()).evaluate(
        facts_from_data(FACTS)
    )
    assert {r.verdict for r in report.results} == {Verdict.ERROR}
    assert {s.verdict for s in report.requirements if s.counts["error"]} == {Verdict.ERROR}
    assert report.exit_code() == 2


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        {},
        {"schema": 2, "applicable": {}, "deny": {}, "warn": {}},
        {"schema": 1, "applicable": {"a": "yes"}, "deny": {}, "warn": {}},
        {"schema": 1, "applicable": {}, "deny": {"a": "x"}, "warn": {}},
        {"schema": 1, "applicable": {}, "deny": {"a": ["x"]}, "warn": {}},
        {"schema": 1, "applicable": {}, "deny": {}},
    ],
)
def test_malformed_decision_documents_are_engine_errors(doc):
    with pytest.raises(EngineError):
        validate_decision_document(doc)


def test_regopy_output_does_not_reach_stdout(tmp_path, capfd):
    with pytest.raises(RuleError):
        evaluate_with(tmp_path, "default applicable := true\ndeny contains x if {\n\tx := \n}\n")
    captured = capfd.readouterr()
    assert "Errors:" not in captured.out
