"""One custom rule cannot take the whole check down: crashing constructs are refused, errors stay local."""

from __future__ import annotations

import json
from pathlib import Path

from pccguard.errors import RuleError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import Verdict
from pccguard.facts.load import load_facts
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.profiles import load_profile
from pccguard.policy.rulebook import load_rulebook
from tests.core.rule_factory import EXAMPLE, PROFILE, write_rule
from tests.core.support import assert_clean_error, run_cli

#: ``with input as`` here aborts regopy while compiling (a C++ terminate, exit 134) before any report.
CRASHING = (
    'deny contains {"fact": "a", "params": {}} if {\n'
    "\ty := data.pcc.rules.pcc_s_001.deny with input as {}\n"
    "\tcount(y) > 0\n"
    "}\n"
)
UNKNOWN_BUILTIN = 'deny contains {"fact": "a", "params": {}} if {\n\tnot_a_builtin.frob(input.facts)\n}\n'


def test_check_refuses_a_crashing_construct_naming_file_and_line(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "ACME-S-001", CRASHING)
    result = run_cli("check", EXAMPLE, "--profile", PROFILE, "--rules", tmp_path)
    assert_clean_error(result, f"{path}:20", "PCC101")
    assert "terminate" not in result.stderr


def test_rules_test_refuses_a_crashing_construct(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "ACME-S-001", CRASHING)
    assert_clean_error(run_cli("rules", "test", "--rules", tmp_path), f"{path}:20", "PCC101")


def test_every_rulebook_load_refuses_it(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", CRASHING)
    try:
        load_rulebook([tmp_path])
    except RuleError as exc:
        assert "PCC101" in exc.one_line()
    else:
        raise AssertionError("a rule that crashes the engine was loaded")


def test_rules_lint_still_lists_it(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", CRASHING)
    result = run_cli("rules", "lint", "--rules", tmp_path)
    assert result.returncode == 1
    assert "PCC101" in result.stdout


def test_an_unknown_builtin_errors_alone_and_names_its_file(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "ACME-S-001", UNKNOWN_BUILTIN)
    rulebook = load_rulebook([tmp_path])
    evaluator = Evaluator(rulebook, load_profile(PROFILE, rulebook), EmbeddedEngine(rulebook.modules()))
    report = evaluator.evaluate(load_facts(EXAMPLE))
    by_id = {r.id: r for r in report.results}
    bad = by_id.pop("ACME-S-001")
    assert bad.verdict == Verdict.ERROR
    assert str(path) in (bad.reason or "")
    assert "not_a_builtin.frob" in (bad.reason or "")
    assert Verdict.ERROR not in {r.verdict for r in by_id.values()}
    assert by_id["PCC-S-004"].verdict == Verdict.FAIL, "the shipped rules still evaluate normally"
    assert report.exit_code() == 2, "fail closed: an erroring rule never lets the run pass"


def test_cli_report_with_one_bad_rule(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", UNKNOWN_BUILTIN)
    result = run_cli("check", EXAMPLE, "--profile", PROFILE, "--rules", tmp_path, "--format", "json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    errors = [r["rule"]["id"] for r in doc["results"] if r["verdict"] == "error"]
    assert errors == ["ACME-S-001"]
    assert "Expecting value" not in result.stdout
