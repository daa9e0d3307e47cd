"""Every report format agrees with the exit status and ``--fail-on``, and ``pccguard facts`` output reads back.

A CI gate may read the exit status, the JUnit XML, the SARIF log or the JSON
report; if they disagree the gate goes red (or green) for a run that the others
call the opposite. ``Report.failing()`` decides what fails the run, so each
format is checked against it and against the real process exit status.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from pccguard.evaluation.results import FAILING_VERDICTS, Report, Verdict
from pccguard.facts.load import facts_document, load_facts
from pccguard.facts.model import DeploymentFacts
from tests.core.support import EXAMPLES, run_cli

HARDENED = EXAMPLES / "vllm-hardened.yaml"
DEFAULT = EXAMPLES / "vllm-multitenant-default.yaml"


@pytest.fixture(scope="module")
def low_fail_facts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment compliant under multi-tenant-baseline on its own facts, plus one low-severity failure.

    It is the hardened example without the plugin's mitigations (a facts file
    only declares them) and without what they would cover: no prefix cache,
    freed blocks zeroed by the engine, no cache-hit series on ``/metrics``.
    """
    doc = yaml.safe_load(HARDENED.read_text(encoding="utf-8"))
    optimizations = doc["optimizations"]
    optimizations["prefix_caching"]["enabled"] = False
    optimizations["chunked_prefill"]["chunks_enter_prefix_cache"] = False
    optimizations["paging"]["scrub_on_free"] = True
    doc["observability"]["metrics"].update(cache_hit_metrics=False, authenticated=True)
    doc["runtime"]["mitigations_active"] = []
    folder = tmp_path_factory.mktemp("facts")
    compliant = folder / "compliant.yaml"
    compliant.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert run_cli("check", compliant, "--profile", "multi-tenant-baseline").returncode == 0
    assert doc["observability"]["usage_stats"]["enabled"] is False
    doc["observability"]["usage_stats"]["enabled"] = True
    path = folder / "usage-stats-on.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _outputs(facts: Path, fail_on: str) -> tuple[dict[str, str], int]:
    """Every machine-readable format of one check, and the exit status they must agree with."""
    outputs: dict[str, str] = {}
    codes = set()
    for fmt in ("json", "junit", "sarif", "table"):
        result = run_cli(
            "check", facts, "--profile", "multi-tenant-baseline", "--fail-on", fail_on, "-f", fmt
        )
        assert result.returncode in (0, 1), result.stderr
        outputs[fmt] = result.stdout
        codes.add(result.returncode)
    assert len(codes) == 1, codes
    return outputs, codes.pop()


def _junit_failures(text: str) -> set[str]:
    root = ET.fromstring(text)
    failed = set()
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add((case.get("name") or "").split(" ")[0])
    assert int(root.get("failures", -1)) + int(root.get("errors", -1)) == len(failed)
    return failed


@pytest.mark.parametrize(
    ("facts_name", "fail_on", "expected_code"),
    [
        ("low_fail", "low", 1),
        ("low_fail", "medium", 0),
        ("default", "high", 1),
        ("default", "critical", 1),
    ],
)
def test_every_format_agrees_with_exit_status_and_fail_on(
    low_fail_facts: Path, facts_name: str, fail_on: str, expected_code: int
) -> None:
    facts = low_fail_facts if facts_name == "low_fail" else DEFAULT
    outputs, code = _outputs(facts, fail_on)
    assert code == expected_code

    report = Report.model_validate_json(outputs["json"])
    assert report.fail_on == fail_on
    assert report.exit_code() == code
    gate = {r.id for r in report.failing()}
    below = {r.id for r in report.results if r.verdict in FAILING_VERDICTS} - gate
    assert bool(gate) == (code == 1)

    # JUnit: a failure exactly for what fails the run; a fail below --fail-on passes, with a note.
    assert _junit_failures(outputs["junit"]) == gate
    root = ET.fromstring(outputs["junit"])
    cases = {(c.get("name") or "").split(" ")[0]: c for c in root.iter("testcase")}
    for rule_id in below:
        assert f"below --fail-on {fail_on}" in (cases[rule_id].findtext("system-out") or "")

    # SARIF: the exit status, the gate per result, and no blocking level for a fail below the threshold.
    run = json.loads(outputs["sarif"])["runs"][0]
    assert run["invocations"][0]["exitCode"] == code
    sarif = {r["ruleId"]: r for r in run["results"]}
    assert {rid for rid, r in sarif.items() if r["properties"]["failsGate"]} == gate
    for rule_id in below:
        assert sarif[rule_id]["level"] == "note"

    # Table: the outcome line, and each fail below the threshold says it does not fail the run.
    assert re.search(rf"^Result\s+{'FAIL' if code else 'PASS'} exit {code}\b", outputs["table"], re.M)
    assert outputs["table"].count("does not fail the run") == len(below)


def test_low_failure_below_threshold_is_not_a_junit_failure(low_fail_facts: Path) -> None:
    """The reported bug: exit 0 under --fail-on medium, yet ``failures="1"`` turned CI red."""
    result = run_cli(
        "check", low_fail_facts, "--profile", "multi-tenant-baseline", "--fail-on", "medium", "-f", "junit"
    )
    assert result.returncode == 0
    root = ET.fromstring(result.stdout)
    assert root.get("failures") == "0" and root.get("errors") == "0"


# --------------------------------------------------------------------------- pccguard facts round trip


def test_facts_command_output_reads_back_with_check(tmp_path: Path) -> None:
    """``pccguard facts X > f.yaml; pccguard check f.yaml``: the reported ``version_tuple: unknown field``."""
    dumped = run_cli("facts", DEFAULT)
    assert dumped.returncode == 0, dumped.stderr
    copy = tmp_path / "f.yaml"
    copy.write_text(dumped.stdout, encoding="utf-8")
    original = run_cli("check", DEFAULT, "--profile", "multi-tenant-baseline", "-f", "json")
    again = run_cli("check", copy, "--profile", "multi-tenant-baseline", "-f", "json")
    assert again.returncode == original.returncode == 1, again.stderr
    first, second = Report.model_validate_json(original.stdout), Report.model_validate_json(again.stdout)
    assert _verdicts(second) == _verdicts(first)


def _verdicts(report: Report) -> list[tuple[str, Verdict, list[str]]]:
    return [(r.id, r.verdict, [f.message for f in r.findings]) for r in report.results]


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_facts_document_round_trips_every_example(example: Path, tmp_path: Path) -> None:
    from pccguard.evaluation.settings import build_evaluator

    facts = load_facts(example)
    copy = tmp_path / "f.yaml"
    copy.write_text(json.dumps(facts_document(facts), indent=2, sort_keys=True), encoding="utf-8")
    reread = load_facts(copy)
    assert reread.policy_input() == facts.policy_input()
    evaluator = build_evaluator(profile="multi-tenant-baseline")
    assert _verdicts(evaluator.evaluate(reread)) == _verdicts(evaluator.evaluate(facts))


def test_facts_document_has_only_input_fields() -> None:
    facts = load_facts(DEFAULT)
    document = facts_document(facts)
    assert "version_tuple" not in document["deployment"]
    reread = DeploymentFacts.model_validate(document)  # forbids unknown fields
    assert reread.policy_input() == facts.policy_input()
    assert reread.deployment.version_tuple == [0, 33, 0]
