"""The terminal table says what to do next, hides what does not apply, and fits the width it is given.

And the tables a rule author copies ids from (``rules list``, ``catalog``) never
cut an id, whatever the width.
"""

from __future__ import annotations

import json
import re

import pytest

from pccguard.evaluation.results import Report, Verdict
from pccguard.evaluation.settings import build_evaluator
from pccguard.facts.load import load_facts
from pccguard.reports import render
from pccguard.reports._common import one_line
from pccguard.reports.table import render_table
from tests.core.support import EXAMPLES, run_cli

DEFAULT = EXAMPLES / "vllm-multitenant-default.yaml"


@pytest.fixture(scope="module")
def report() -> Report:
    return build_evaluator(profile="multi-tenant-baseline").evaluate(load_facts(DEFAULT))


def _rows(text: str) -> set[str]:
    """Rule ids that have a row of their own (verdict label first) in a rendered table."""
    return set(re.findall(r"^\s+[A-Z/]+\s+([A-Z]+-[A-Z]-\d{3})\s", text, re.M))


def test_not_applicable_rows_are_hidden_by_default_and_counted(report: Report) -> None:
    not_applicable = {r.id for r in report.results if r.verdict == Verdict.NOT_APPLICABLE}
    assert not_applicable
    text = render_table(report, width=200)
    assert render(report, "table") == render_table(report)
    assert not (_rows(text) & not_applicable)
    assert _rows(text) == {r.id for r in report.results} - not_applicable
    assert re.search(rf"^Hidden\s+{len(not_applicable)} not applicable rule\(s\) not listed", text, re.M)
    assert "--show-all" in text

    everything = render_table(report, width=200, show_all=True)
    assert _rows(everything) == {r.id for r in report.results}
    assert "Hidden" not in everything
    narrow = render_table(report, width=60)
    assert not any(re.search(rf"^N/A {rule_id}\b", narrow, re.M) for rule_id in not_applicable)


def test_table_shows_the_remediation_of_each_failing_rule(report: Report) -> None:
    text = render_table(report, width=400)
    needing = [r for r in report.results if r.verdict in (Verdict.FAIL, Verdict.WARN) and r.rule.remediation]
    assert needing
    for result in needing:
        assert f"fix: {one_line(result.rule.remediation or '')}" in text, result.id
    narrow = " ".join(render_table(report, width=60).split())
    for result in needing:
        assert " ".join(f"fix: {result.rule.remediation}".split()) in narrow, result.id


def test_cli_show_all_flag() -> None:
    hidden = run_cli("check", DEFAULT, "--profile", "multi-tenant-baseline")
    shown = run_cli("check", DEFAULT, "--profile", "multi-tenant-baseline", "--show-all")
    assert hidden.returncode == shown.returncode == 1
    assert "N/A" not in hidden.stdout.split("────")[0] and "N/A" in shown.stdout
    assert "not listed (--show-all lists them)" in hidden.stdout


@pytest.mark.parametrize("columns", [60, 100, 150])
def test_piped_table_honours_columns(columns: int) -> None:
    result = run_cli("check", DEFAULT, "--profile", "multi-tenant-baseline", env={"COLUMNS": str(columns)})
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert max(len(line) for line in lines) > columns - 10  # the width is used, not a fixed 100


def test_piped_table_without_columns_uses_the_default_width() -> None:
    result = run_cli("check", DEFAULT, "--profile", "multi-tenant-baseline", env={"COLUMNS": ""})
    assert 90 < max(len(line) for line in result.stdout.splitlines()) <= 100


# --------------------------------------------------------------------------- ids are never cut


def _whole(token: str, text: str) -> bool:
    return re.search(rf"(?<![\w:.-]){re.escape(token)}(?![\w:.-])", text) is not None


@pytest.fixture(scope="module")
def rules_json() -> list[dict[str, str]]:
    listed: list[dict[str, str]] = json.loads(run_cli("rules", "list", "--format", "json").stdout)
    return listed


@pytest.fixture(scope="module")
def catalog_json() -> dict[str, list[dict[str, object]]]:
    catalog: dict[str, list[dict[str, object]]] = json.loads(run_cli("catalog", "--format", "json").stdout)
    return catalog


@pytest.mark.parametrize("columns", [40, 80, 120, 200])
def test_rules_list_never_cuts_an_id(rules_json: list[dict[str, str]], columns: int) -> None:
    result = run_cli("rules", "list", env={"COLUMNS": str(columns)})
    assert result.returncode == 0
    assert "…" not in result.stdout
    for rule in rules_json:
        for key in ("id", "optimization", "mitigation"):
            assert _whole(rule[key], result.stdout), (columns, rule["id"], key, rule[key])


@pytest.mark.parametrize("columns", [40, 80, 120, 200])
def test_catalog_never_cuts_an_id(catalog_json: dict[str, list[dict[str, object]]], columns: int) -> None:
    result = run_cli("catalog", env={"COLUMNS": str(columns)})
    assert result.returncode == 0
    assert "…" not in result.stdout
    for row in [*catalog_json["optimizations"], *catalog_json["observability"]]:
        assert _whole(str(row["id"]), result.stdout), (columns, row["id"])
        for mitigation in row["mitigations"]:  # type: ignore[attr-defined]
            assert _whole(str(mitigation), result.stdout), (columns, row["id"], mitigation)
