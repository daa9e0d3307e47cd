"""Evaluation is bounded in time, memory and input size; a run past a bound is refused, never passed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pccguard.errors import InputError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.facts.load import load_facts
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.engines.limits import EvalLimitError, EvalLimits
from pccguard.policy.profiles import load_profile
from pccguard.policy.rulebook import load_rulebook
from tests.core.rule_factory import EXAMPLE, PROFILE, write_rule
from tests.core.support import assert_clean_error, run_cli

SLOW = 'deny contains {"fact": "a", "params": {}} if {\n\tsome n in numbers.range(1, 30000000)\n\tn < 0\n}\n'
GREEDY = (
    'deny contains {"fact": "a", "params": {}} if {\n'
    "\txs := [x | some x in numbers.range(1, 30000000)]\n"
    "\tcount(xs) < 0\n"
    "}\n"
)


def _evaluate(folder: Path | None, limits: EvalLimits) -> object:
    rulebook = load_rulebook([folder] if folder else [])
    engine = EmbeddedEngine(rulebook.modules(), limits)
    return Evaluator(rulebook, load_profile(PROFILE, rulebook), engine).evaluate(load_facts(EXAMPLE))


def test_time_limit_stops_a_runaway_rule(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", SLOW)
    started = time.monotonic()
    with pytest.raises(EvalLimitError, match=r"time limit of 1 s .*--eval-timeout"):
        _evaluate(tmp_path, EvalLimits(timeout_s=1))
    assert time.monotonic() - started < 20


def test_memory_limit_stops_a_greedy_rule(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", GREEDY)
    with pytest.raises(EvalLimitError, match=r"memory limit of 256 MiB .*--eval-memory"):
        _evaluate(tmp_path, EvalLimits(timeout_s=60, memory_mb=256))


def test_facts_size_limit() -> None:
    with pytest.raises(InputError, match=r"over the limit of 100 bytes .*--max-facts-bytes"):
        _evaluate(None, EvalLimits(max_input_bytes=100))


def test_bounded_and_unbounded_evaluation_agree() -> None:
    bounded = _evaluate(None, EvalLimits())
    unbounded = _evaluate(None, EvalLimits(timeout_s=0, memory_mb=0, max_input_bytes=0))
    assert bounded == unbounded


def test_cli_time_limit_is_one_line_exit_2(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", SLOW)
    result = run_cli("check", EXAMPLE, "--profile", PROFILE, "--rules", tmp_path, "--eval-timeout", "1")
    assert_clean_error(result, "time limit of 1 s", "--eval-timeout")
    assert result.stdout == ""


def test_cli_rules_test_is_bounded_too(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", SLOW)
    fixtures = tmp_path / "fixtures" / "ACME-S-001"
    fixtures.mkdir(parents=True)
    (fixtures / "pass.yaml").write_text("expect: pass\nfacts:\n  deployment: {engine: vllm}\n")
    result = run_cli("rules", "test", "--rules", tmp_path, "--rule", "ACME-S-001", "--eval-timeout", "1")
    assert_clean_error(result, "time limit of 1 s", "--eval-timeout")


def test_cli_facts_size_limit() -> None:
    assert_clean_error(run_cli("check", EXAMPLE, "--max-facts-bytes", "100"), "--max-facts-bytes")


def test_cli_negative_limit_is_a_usage_error() -> None:
    assert_clean_error(run_cli("check", EXAMPLE, "--eval-timeout", "-1"), "--eval-timeout")
