"""Report formats, rendered from reports built by the real pipeline.

Every report here comes from ``Evaluator.evaluate`` over the shipped rulebook
plus a small custom rule directory ("the zoo") whose rules are written so that
one facts file yields every verdict: pass, fail, warn, enforced, waived,
not_applicable and error. The zoo rules read ``input.facts`` directly, so they
do not depend on the shipped rule library or on any shipped rule's logic.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from pccguard.errors import EngineError, UsageError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import Report, Verdict
from pccguard.facts.load import facts_from_data, load_facts
from pccguard.facts.model import DeploymentFacts
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.metadata import SEVERITIES
from pccguard.policy.profiles import load_profile
from pccguard.policy.rulebook import Rulebook, load_rulebook
from pccguard.policy.waivers import WaiverSet, load_waivers
from pccguard.reports import FORMATS, render
from pccguard.reports.json_report import stable_report
from pccguard.reports.sarif import build_sarif, render_sarif
from pccguard.reports.table import render_table

SARIF_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"

# --------------------------------------------------------------------------- rule and fact files

RULE_TEMPLATE = """\
# METADATA
# title: {title}
# description: {description}
# custom:
#   id: {id}
#   requirement: {letter}
#   optimization: {optimization}
#   severity: {severity}
#   threats: [test threat]
#   references: ["Test reference 1", "CWE-226"]
#   mitigation: {mitigation}
#   message: {message}
#   remediation: {remediation}
package pcc.rules.{package}

import rego.v1

{body}
"""


def write_rule(
    folder: Path,
    rule_id: str,
    body: str,
    *,
    title: str,
    message: str,
    severity: str = "high",
    optimization: str = "paging",
    mitigation: str = "scrub_freed_kv",
    description: str = "A rule written by the report tests.",
    remediation: str = "Turn it off.",
) -> None:
    """A rule file; text fields are JSON-quoted, which YAML reads as double-quoted scalars."""
    package = rule_id.lower().replace("-", "_")
    text = RULE_TEMPLATE.format(
        id=rule_id,
        letter=rule_id.split("-")[1],
        package=package,
        body=body,
        title=json.dumps(title),
        message=json.dumps(message),
        description=json.dumps(description),
        remediation=json.dumps(remediation),
        severity=severity,
        optimization=optimization,
        mitigation=mitigation,
    )
    (folder / f"{package}.rego").write_text(text, encoding="utf-8")


def _deny(fact: str, condition: str, kind: str = "deny") -> str:
    return f'{kind} contains {{"fact": "{fact}", "params": {{}}}} if {{\n\t{condition}\n}}'


#: id → (body, extra metadata, the verdict the zoo facts give it).
ZOO: dict[str, tuple[str, dict[str, str], Verdict]] = {
    "PCC-E-901": (
        "applicable := true\n\n"
        + _deny("api.custom_logit_processors", "input.facts.api.custom_logit_processors == true"),
        {"title": "Clients cannot run code in the sampler", "message": "Custom logit processors are on"},
        Verdict.PASS,
    ),
    "PCC-T-901": (
        "default applicable := false\n\n"
        "applicable if input.facts.optimizations.priority_scheduling.enabled != false\n\n"
        + _deny(
            "optimizations.priority_scheduling.enabled",
            "input.facts.optimizations.priority_scheduling.enabled == true",
        ),
        {
            "title": "Client-chosen priorities",
            "message": "Priority scheduling is on",
            "optimization": "priority_scheduling",
            "mitigation": "server_side_priority",
        },
        Verdict.NOT_APPLICABLE,
    ),
    "PCC-P-901": (
        "applicable := true\n\n"
        + _deny("observability.profiler.enabled", "input.facts.observability.profiler.enabled == true"),
        {
            "title": "Profiler endpoint is open",
            "message": "The profiler is enabled (enabled: {observability.profiler.enabled})",
            "severity": "critical",
            "optimization": "global_profiling",
            "mitigation": "close_privileged_endpoints",
        },
        Verdict.FAIL,
    ),
    "PCC-V-901": (
        "applicable := true\n\n"
        + _deny("tee.transparency_log", "input.facts.tee.transparency_log == false", kind="warn"),
        {
            "title": "Builds are not logged for transparency",
            "message": "No transparency log",
            "severity": "medium",
            "optimization": "closed_source",
            "mitigation": "attested_build",
        },
        Verdict.WARN,
    ),
    "PCC-T-902": (
        "applicable := true\n\n"
        + _deny(
            "optimizations.cache_aware_scheduling.enabled",
            "input.facts.optimizations.cache_aware_scheduling.enabled == true",
        ),
        {
            "title": "Routing follows cache contents",
            "message": "Cache-aware scheduling is on",
            "optimization": "cache_aware_scheduling",
            "mitigation": "cache_agnostic_scheduling",
        },
        Verdict.ENFORCED,
    ),
    "PCC-S-901": (
        "applicable := true\n\n"
        + _deny(
            "observability.request_logging.enabled",
            "input.facts.observability.request_logging.enabled == true",
        ),
        {
            "title": "Request logging keeps prompts",
            "message": "Requests are logged",
            "severity": "medium",
            "optimization": "request_logging",
            "mitigation": "allowlist_logs",
        },
        Verdict.WAIVED,
    ),
    # No ``applicable`` rule at all: the decision has no entry for it, which
    # the evaluator turns into ``error`` (fail-closed), never into a pass.
    "PCC-E-902": (
        'note := "this rule never says whether it applies"',
        {"title": "A rule that gives no decision", "message": "unreachable"},
        Verdict.ERROR,
    ),
}

ZOO_FACTS = """\
deployment:
  name: prod-eu-1
  engine: vllm
  engine_version: "0.9.1"
optimizations:
  paging:
    enabled: true
    scrub_on_free: false
  priority_scheduling:
    enabled: false
  cache_aware_scheduling:
    enabled: true
observability:
  profiler:
    enabled: true
  request_logging:
    enabled: true
api:
  custom_logit_processors: false
tee:
  transparency_log: false
runtime:
  plugin_active: true
  mitigations_active: [cache_agnostic_scheduling]
  mitigations_verified: [cache_agnostic_scheduling]
"""

WAIVERS = """\
waivers:
  - rule: PCC-S-901
    scope: "prod-*"
    justification: "Request logs go to the sealed audit store until the Q3 migration."
    owner: secops@example.com
    expires: "2999-12-31"
  - rule: PCC-X-999
    scope: "*"
    justification: "This names a rule that does not exist."
    owner: nobody@example.com
    expires: "2999-12-31"
"""

HOSTILE_TITLE = "Hostile | <script>alert('title')</script> & [x](https://evil.example)"
HOSTILE_MESSAGE = (
    "cell | breaker <script>alert(1)</script> **bold** ![img](https://evil.example/x.png)\n"
    "second line \x1b[2J after escape\n- not a list"
)


def line_of(text: str, needle: str, after: str | None = None) -> int:
    """1-based line number of the first line containing ``needle`` (after the line containing ``after``)."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


class RaisingEngine:
    """A policy engine that always fails, as a crashed OPA server or a broken bundle would."""

    name = "raising"

    def evaluate(self, input_doc: dict[str, Any]) -> Any:
        raise EngineError("policy engine unavailable: connection refused")


@dataclass
class Zoo:
    rulebook: Rulebook
    evaluator: Evaluator
    facts_path: Path
    waivers: WaiverSet
    folder: Path

    def facts(self) -> DeploymentFacts:
        """The zoo's facts as a running plugin reports them: only those can make a verdict ``enforced``.

        ``load_facts`` reads any file as a declaration (``plugin_active`` false);
        the plugin builds its facts in the engine, as this sets them.
        """
        facts = load_facts(self.facts_path)
        facts.runtime.plugin_active = True
        return facts

    def report(self, **kwargs: Any) -> Report:
        return self.evaluator.evaluate(self.facts(), waivers=self.waivers, **kwargs)


def make_zoo(folder: Path) -> Zoo:
    rules = folder / "rules"
    rules.mkdir()
    for rule_id, (body, meta, _) in ZOO.items():
        write_rule(rules, rule_id, body, **meta)
    write_rule(
        rules,
        "PCC-P-966",
        "applicable := true\n\n"
        + _deny("observability.dumps.enabled", "input.facts.observability.dumps.enabled == true"),
        title=HOSTILE_TITLE,
        message=HOSTILE_MESSAGE,
        severity="low",
        optimization="dumps",
        mitigation="close_privileged_endpoints",
    )
    facts_path = folder / "facts.yaml"
    facts_path.write_text(ZOO_FACTS, encoding="utf-8")
    rulebook = load_rulebook([rules])
    waivers_path = folder / "waivers.yaml"
    waivers_path.write_text(WAIVERS, encoding="utf-8")
    waivers = load_waivers(waivers_path, known_rules=set(rulebook.rules))
    evaluator = Evaluator(rulebook, load_profile("pcc-strict", rulebook), EmbeddedEngine(rulebook.modules()))
    return Zoo(rulebook, evaluator, facts_path, waivers, folder)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    return make_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def zoo_report(zoo: Zoo) -> Report:
    return zoo.report()


@pytest.fixture(scope="module")
def error_report(zoo: Zoo) -> Report:
    evaluator = Evaluator(zoo.rulebook, zoo.evaluator.profile, RaisingEngine())
    return evaluator.evaluate(zoo.facts())


@pytest.fixture(scope="module")
def hostile_report(zoo: Zoo) -> Report:
    """The zoo with the hostile rule firing and a hostile deployment name."""
    data = {
        "deployment": {"name": "<img src=x onerror=alert(1)>|\x1b[31mprod", "engine": "vllm"},
        "observability": {"dumps": {"enabled": True}},
    }
    return zoo.evaluator.evaluate(facts_from_data(data))


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SARIF_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def by_id(report: Report) -> dict[str, Any]:
    return {r.id: r for r in report.results}


def sarif_results(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["ruleId"]: r for r in log["runs"][0]["results"]}


def assert_valid_sarif(validator: jsonschema.Draft7Validator, text: str) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(text)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    return log


# --------------------------------------------------------------------------- the fixture itself


def test_zoo_report_has_every_verdict(zoo_report: Report) -> None:
    results = by_id(zoo_report)
    for rule_id, (_, _, expected) in ZOO.items():
        assert results[rule_id].verdict == expected, (rule_id, results[rule_id])
    # ``declared`` needs plugin_active false and ``enforced`` needs it true, so one report cannot
    # hold both; test_undecided_and_declared.py renders ``declared`` in every format.
    assert {r.verdict for r in zoo_report.results} == set(Verdict) - {Verdict.DECLARED}
    assert {"PCC-S-001", "PCC-S-003"} <= set(results)
    assert any("PCC-X-999" in p for p in zoo_report.problems)
    assert zoo_report.exit_code() == 2


# --------------------------------------------------------------------------- registry


def test_formats_registry_and_render(zoo_report: Report) -> None:
    assert set(FORMATS) == {"table", "json", "sarif", "junit", "markdown", "html"}
    with pytest.raises(UsageError, match=r"unknown report format 'yaml' \(choose from: table, json"):
        render(zoo_report, "yaml")
    assert render(zoo_report) == render(zoo_report, "table")


def test_every_format_renders_every_report(
    zoo_report: Report, error_report: Report, hostile_report: Report
) -> None:
    for report in (zoo_report, error_report, hostile_report):
        for name, formatter in FORMATS.items():
            text = formatter(report)
            assert text.endswith("\n"), name
            assert render(report, name) == text


# --------------------------------------------------------------------------- SARIF


def test_sarif_validates_against_official_schema(
    sarif_validator: jsonschema.Draft7Validator,
    zoo_report: Report,
    error_report: Report,
    hostile_report: Report,
    zoo: Zoo,
) -> None:
    for report in (zoo_report, error_report, hostile_report):
        log = assert_valid_sarif(sarif_validator, render_sarif(report))
        assert log["version"] == "2.1.0"
        assert "sarif-schema-2.1.0.json" in log["$schema"]
    assert_valid_sarif(sarif_validator, render_sarif(zoo_report, source_root=zoo.folder))


def test_sarif_driver_rules(zoo_report: Report) -> None:
    log = build_sarif(zoo_report)
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "pccguard"
    assert driver["version"] == driver["semanticVersion"] == zoo_report.tool["version"]
    assert driver["informationUri"].startswith("https://")
    rules = driver["rules"]
    assert [r["id"] for r in rules] == sorted(r.id for r in zoo_report.results)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    descriptors = {r["id"]: r for r in rules}
    profiler = descriptors["PCC-P-901"]
    assert profiler["name"] == "ProfilerEndpointIsOpen"
    assert profiler["shortDescription"]["text"] == "Profiler endpoint is open"
    assert profiler["fullDescription"]["text"]
    assert profiler["defaultConfiguration"]["level"] == "error"
    assert profiler["properties"]["security-severity"] == "9.5"
    assert profiler["properties"]["precision"] == "high"
    assert set(profiler["properties"]["tags"]) >= {"PCC-P", "global_profiling", "security"}
    assert "close_privileged_endpoints" in profiler["help"]["text"]
    assert "CWE-226" in profiler["help"]["markdown"]
    assert descriptors["PCC-S-901"]["properties"]["security-severity"] == "5.5"
    assert descriptors["PCC-S-901"]["defaultConfiguration"]["level"] == "warning"
    for descriptor in rules:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", descriptor["name"]), descriptor["name"]
        assert re.fullmatch(r"\d+\.\d", descriptor["properties"]["security-severity"])
    assert run["automationDetails"]["id"] == "pccguard/pcc-strict/prod-eu-1/"


def test_sarif_kind_and_level_per_verdict(zoo_report: Report) -> None:
    log = build_sarif(zoo_report)
    results = sarif_results(log)
    expected = {
        "PCC-E-901": ("pass", "none"),
        "PCC-T-901": ("notApplicable", "none"),
        "PCC-P-901": ("fail", "error"),
        "PCC-V-901": ("fail", "warning"),
        "PCC-T-902": ("pass", "none"),
        "PCC-S-901": ("fail", "warning"),
        "PCC-E-902": ("fail", "error"),
    }
    for rule_id, (kind, level) in expected.items():
        assert (results[rule_id]["kind"], results[rule_id]["level"]) == (kind, level), rule_id
    for rule_id, result in results.items():
        assert result["properties"]["verdict"] == by_id(zoo_report)[rule_id].verdict.value
        assert result["properties"]["deployment"] == "prod-eu-1"
        assert result["message"]["text"]
    enforced = results["PCC-T-902"]
    assert enforced["properties"]["enforced"] is True
    assert enforced["properties"]["mitigation"] == "cache_agnostic_scheduling"
    assert "Cache-aware scheduling is on" in enforced["message"]["text"]
    assert "suppressions" not in results["PCC-P-901"]


def test_sarif_waived_result_is_suppressed(zoo_report: Report) -> None:
    waived = sarif_results(build_sarif(zoo_report))["PCC-S-901"]
    assert waived["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "Request logs go to the sealed audit store until the Q3 migration.",
            "properties": {
                "owner": "secops@example.com",
                "expires": "2999-12-31",
                "scope": "prod-*",
                "status": "active",
            },
        }
    ]
    assert "Requests are logged" in waived["message"]["text"]


def test_sarif_engine_errors_are_notifications(zoo_report: Report, error_report: Report) -> None:
    log = build_sarif(zoo_report)
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["exitCode"] == zoo_report.exit_code() == 2
    notes = invocation["toolExecutionNotifications"]
    rule_notes = [n for n in notes if "associatedRule" in n]
    assert [n["associatedRule"]["id"] for n in rule_notes] == ["PCC-E-902"]
    assert any("PCC-X-999" in n["message"]["text"] for n in notes)

    log = build_sarif(error_report)
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    results = log["runs"][0]["results"]
    assert results and all((r["kind"], r["level"]) == ("fail", "error") for r in results)
    assert all("connection refused" in r["message"]["text"] for r in results)
    associated = {
        n["associatedRule"]["id"] for n in invocation["toolExecutionNotifications"] if "associatedRule" in n
    }
    assert associated == {r.id for r in error_report.results}


def test_sarif_location_is_the_facts_file_line(zoo: Zoo, zoo_report: Report) -> None:
    text = zoo.facts_path.read_text(encoding="utf-8")
    expected_line = line_of(text, "enabled: true", after="profiler:")
    result = sarif_results(build_sarif(zoo_report))["PCC-P-901"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["region"]["startLine"] == expected_line
    assert physical["artifactLocation"]["uri"] == zoo.facts_path.resolve().as_uri()
    assert result["locations"][0]["properties"]["fact"] == "observability.profiler.enabled"

    relative = sarif_results(build_sarif(zoo_report, source_root=zoo.folder))["PCC-P-901"]
    assert relative["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "facts.yaml"


def test_sarif_flag_and_env_provenance_become_logical_locations(zoo: Zoo) -> None:
    facts = facts_from_data(
        {
            "deployment": {"name": "d", "engine": "vllm"},
            "observability": {"profiler": {"enabled": True}, "request_logging": {"enabled": True}},
            "provenance": {
                "observability.profiler.enabled": {"kind": "flag", "name": "--enable-profiler"},
                "observability.request_logging.enabled": {"kind": "env", "name": "VLLM_LOG_REQUESTS"},
            },
        }
    )
    results = sarif_results(build_sarif(zoo.evaluator.evaluate(facts)))
    flag = results["PCC-P-901"]["locations"][0]
    assert "physicalLocation" not in flag
    assert flag["logicalLocations"] == [
        {"name": "--enable-profiler", "fullyQualifiedName": "vllm --enable-profiler", "kind": "member"}
    ]
    env = results["PCC-S-901"]["locations"][0]["logicalLocations"][0]
    assert env["fullyQualifiedName"] == "env VLLM_LOG_REQUESTS"
    # No provenance at all: the fact path itself names the location.
    unknown = facts_from_data(
        {"deployment": {"name": "d", "engine": "vllm"}, "tee": {"transparency_log": False}}
    )
    warn = sarif_results(build_sarif(zoo.evaluator.evaluate(unknown)))["PCC-V-901"]
    assert warn["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "tee.transparency_log"

    # Given an artifact, every result also gets the physical location GitHub insists on.
    anchored = sarif_results(build_sarif(zoo.evaluator.evaluate(facts), artifact="deploy/vllm serve.sh"))
    anchor = {"artifactLocation": {"uri": "deploy/vllm%20serve.sh"}, "region": {"startLine": 1}}
    assert anchored["PCC-P-901"]["locations"][0]["physicalLocation"] == anchor
    assert anchored["PCC-P-901"]["locations"][0]["logicalLocations"] == flag["logicalLocations"]
    assert all(loc["physicalLocation"] == anchor for r in anchored.values() for loc in r["locations"])


def test_sarif_every_result_has_a_physical_location_when_facts_come_from_a_file(zoo_report: Report) -> None:
    """GitHub rejects the whole upload if a single result has no physical location."""
    for result in build_sarif(zoo_report)["runs"][0]["results"]:
        assert result.get("locations"), result["ruleId"]
        for location in result["locations"]:
            assert location["physicalLocation"]["artifactLocation"]["uri"].endswith("facts.yaml")


def test_sarif_fingerprints_stable_across_runs(zoo: Zoo) -> None:
    def prints(report: Report) -> dict[str, str]:
        return {
            rid: r["partialFingerprints"]["pccguard/v1"]
            for rid, r in sarif_results(build_sarif(report)).items()
        }

    first = prints(zoo.report())
    fresh = Evaluator(
        zoo.rulebook, load_profile("pcc-strict", zoo.rulebook), EmbeddedEngine(zoo.rulebook.modules())
    )
    second = prints(fresh.evaluate(zoo.facts(), waivers=zoo.waivers))
    assert first == second
    assert len(set(first.values())) == len(first)
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in first.values())
    renamed = facts_from_data(
        {**zoo.facts().model_dump(exclude={"provenance"}), "deployment": {"name": "other", "engine": "vllm"}}
    )
    other = prints(zoo.evaluator.evaluate(renamed))
    assert other["PCC-P-901"] != first["PCC-P-901"]
    assert render_sarif(zoo.report()) == render_sarif(zoo.report())


# --------------------------------------------------------------------------- JUnit


def test_junit_counts_and_elements(zoo_report: Report) -> None:
    root = ET.fromstring(render(zoo_report, "junit"))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == [f"pccguard.{x}" for x in "SETPV"] + ["pccguard.problems"]
    for letter in "SETPV":
        suite = suites[f"pccguard.{letter}"]
        mine = [r for r in zoo_report.results if r.rule.requirement == letter]
        verdicts = Counter(r.verdict for r in mine)
        assert int(suite.get("tests", -1)) == len(mine) == len(suite.findall("testcase"))
        assert (
            int(suite.get("failures", -1)) == verdicts[Verdict.FAIL] == len(suite.findall("testcase/failure"))
        )
        assert int(suite.get("errors", -1)) == verdicts[Verdict.ERROR] == len(suite.findall("testcase/error"))
        skipped = verdicts[Verdict.WAIVED] + verdicts[Verdict.NOT_APPLICABLE]
        assert int(suite.get("skipped", -1)) == skipped == len(suite.findall("testcase/skipped"))
        for case in suite.findall("testcase"):
            assert case.get("classname") == f"pccguard.{letter}"
    problems = suites["pccguard.problems"]
    assert int(problems.get("failures", -1)) == len(zoo_report.problems)
    for attr in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(attr, -1)) == sum(int(s.get(attr, 0)) for s in suites.values())

    cases = {c.get("name", "").split(" ")[0]: c for c in root.iter("testcase")}
    failure = cases["PCC-P-901"].find("failure")
    assert failure is not None and failure.get("type") == "critical"
    assert "The profiler is enabled (enabled: true)" in (failure.get("message") or "")
    assert cases["PCC-P-901"].get("name") == "PCC-P-901 Profiler endpoint is open"
    waived = cases["PCC-S-901"].find("skipped")
    assert waived is not None and (waived.get("message") or "").startswith("waived: Request logs go")
    assert "secops@example.com" in (waived.get("message") or "")
    not_applicable = cases["PCC-T-901"].find("skipped")
    assert not_applicable is not None and not_applicable.get("message") == "not applicable"
    assert "No transparency log" in (cases["PCC-V-901"].findtext("system-out") or "")
    assert cases["PCC-V-901"].find("failure") is None
    assert "cache_agnostic_scheduling" in (cases["PCC-T-902"].findtext("system-out") or "")
    assert cases["PCC-E-902"].find("error") is not None
    assert cases["PCC-E-901"].find("*") is None


def test_junit_error_report(error_report: Report) -> None:
    root = ET.fromstring(render(error_report, "junit"))
    assert int(root.get("errors", -1)) == len(error_report.results)
    assert all(
        c.find("error") is not None
        for c in root.iter("testcase")
        if c.get("classname") != "pccguard.problems"
    )


# --------------------------------------------------------------------------- JSON


def test_json_is_deterministic_and_round_trips(zoo: Zoo, zoo_report: Report) -> None:
    text = render(zoo_report, "json")
    assert text == render(zoo.report(), "json")
    data = json.loads(text)
    assert json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text
    assert data["schema_version"] == zoo_report.schema_version
    assert [r["rule"]["id"] for r in data["results"]] == sorted(r.id for r in zoo_report.results)
    assert [s["letter"] for s in data["requirements"]] == list("SETPV")
    assert data["results"][0]["rule"]["references"]
    assert Report.model_validate_json(text) == stable_report(zoo_report)
    shuffled = zoo_report.model_copy(update={"results": list(reversed(zoo_report.results))})
    assert render(shuffled, "json") == text


# --------------------------------------------------------------------------- Markdown and HTML


def test_markdown_escapes_hostile_text(hostile_report: Report) -> None:
    text = render(hostile_report, "markdown")
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;" in text
    assert "\x1b" not in text
    assert not re.search(r"(?<!\\)\[", text), "an unescaped [ could open a link or image"
    rows = [line for line in text.splitlines() if line.startswith("| ") and "PCC-P-966" in line]
    assert len(rows) == 1, rows
    row = rows[0]
    assert len(re.findall(r"(?<!\\)\|", row)) == 7, row
    # The message's second and third lines stay in the same cell.
    assert "second line" in row and "not a list" in row and "<br>" in row
    # Every table row of every table has the same number of cells as its header.
    for block in re.split(r"\n\n", text):
        table = [line for line in block.splitlines() if line.startswith("|")]
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
        assert len(widths) <= 1, block


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs


def test_html_escapes_hostile_text_and_is_self_contained(hostile_report: Report) -> None:
    text = render(hostile_report, "html")
    assert "<script" not in text and "<img" not in text
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "\x1b" not in text
    parser = _TagCollector()
    parser.feed(text)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "span", "table", "thead"}
    allowed |= {"tbody", "tr", "th", "td", "code", "br", "a", "strong", "ul", "li"}
    assert parser.tags <= allowed, parser.tags - allowed
    for name, value in parser.attrs:
        assert name not in {"src", "onerror", "onload"}
        if name == "href":
            assert (value or "").startswith("#")
    assert "Content-Security-Policy" in text


def test_markdown_and_html_list_every_rule(zoo_report: Report) -> None:
    markdown = render(zoo_report, "markdown")
    page = render(zoo_report, "html")
    for result in zoo_report.results:
        assert result.id in markdown and result.id in page
    for summary in zoo_report.requirements:
        assert summary.title in markdown and summary.title in page
    assert "waived by secops@example.com until 2999-12-31" in markdown
    assert "PCC-X-999" in markdown and "PCC-X-999" in page


# --------------------------------------------------------------------------- table


def test_table_lists_requirements_rules_and_footer(zoo_report: Report, zoo: Zoo) -> None:
    text = render_table(zoo_report, show_all=True)  # not-applicable rows are hidden by default
    assert "\x1b" not in text
    for summary in zoo_report.requirements:
        assert re.search(rf"^{summary.letter}\s+{re.escape(summary.title)}\s+", text, re.M), summary.letter
    for result in zoo_report.results:
        assert result.id in text
    for label in ("PASS", "FAIL", "WARN", "ENFORCED", "WAIVED", "N/A", "ERROR"):
        assert label in text
    assert "secops@example.com" in text
    profiler_line = line_of(zoo.facts_path.read_text(), "enabled: true", after="profiler:")
    assert f"at {zoo.facts_path}:{profiler_line}" in render_table(zoo_report, width=200)
    for needle in ("prod-eu-1", "vllm 0.9.1", "pcc-strict", "embedded", "PCC-X-999", "exit 2"):
        assert needle in text, needle
    assert all(len(line) <= 100 for line in text.splitlines())


def test_table_colour_and_width_are_options(zoo_report: Report) -> None:
    plain = render_table(zoo_report)
    coloured = render_table(zoo_report, color=True)
    assert "\x1b[" not in plain and "\x1b[" in coloured
    assert [
        line.rstrip() for line in re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines()
    ] == plain.splitlines()
    narrow = render_table(zoo_report, width=60, show_all=True)
    assert all(len(line) <= 60 for line in narrow.splitlines())
    for result in zoo_report.results:
        assert result.id in narrow.replace("\n", "") or result.id in narrow


def test_table_neutralises_terminal_escapes(hostile_report: Report) -> None:
    text = render_table(hostile_report, color=True)
    assert "\x1b[2J" not in text and "\x1b[31mprod" not in text
    assert "\\x1b[2J" in text
    assert "<script>alert(1)</script>" in text  # shown as written: a terminal does not run it


def test_error_report_everywhere_says_nothing_passed(error_report: Report) -> None:
    assert all(r.verdict == Verdict.ERROR for r in error_report.results)
    table = render(error_report, "table")
    assert "connection refused" in table and "exit 2" in table and "PASS" not in table.split("Result")[0]
    assert "**ERROR**" in render(error_report, "markdown")


# --------------------------------------------------------------------------- property: any valid facts render

TRISTATE = st.none() | st.booleans()
ANY_TEXT = st.text(max_size=24)
FACT_PATHS = [
    "deployment.name",
    "optimizations.paging.scrub_on_free",
    "optimizations.paging.enabled",
    "optimizations.prefix_caching.enabled",
    "observability.profiler.enabled",
    "observability.request_logging.enabled",
    "tee.transparency_log",
    "optimizations.cache_aware_scheduling",
]
PROVENANCE = st.fixed_dictionaries(
    {"kind": st.sampled_from(["flag", "env", "file", "config", "runtime", "default", "probe"])},
    optional={
        "name": ANY_TEXT,
        "uri": st.text(min_size=1, max_size=24)
        | st.sampled_from(["/srv/facts.yaml", "deploy/facts yaml.yml"]),
        "line": st.integers(min_value=1, max_value=10**6),
        "value": ANY_TEXT,
    },
)


def _toggle(*keys: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={key: TRISTATE for key in keys})


FACTS = st.fixed_dictionaries(
    {
        "deployment": st.fixed_dictionaries(
            {"name": ANY_TEXT, "engine": st.sampled_from(["vllm", "sglang", "tgi", "<engine>"])},
            optional={"engine_version": st.none() | st.text(max_size=12)},
        ),
    },
    optional={
        "optimizations": st.fixed_dictionaries(
            {},
            optional={
                "paging": _toggle("enabled", "scrub_on_free"),
                "prefix_caching": st.fixed_dictionaries(
                    {},
                    optional={
                        "enabled": TRISTATE,
                        "ttl_seconds": st.none() | st.floats(min_value=0, max_value=1e6),
                    },
                ),
                "priority_scheduling": _toggle("enabled"),
                "cache_aware_scheduling": _toggle("enabled"),
            },
        ),
        "observability": st.fixed_dictionaries(
            {}, optional={"profiler": _toggle("enabled"), "request_logging": _toggle("enabled")}
        ),
        "tee": _toggle("transparency_log"),
        "api": _toggle("custom_logit_processors"),
        "runtime": st.fixed_dictionaries(
            {
                "plugin_active": st.booleans(),
                "mitigations_active": st.lists(
                    st.sampled_from(
                        ["scrub_freed_kv", "prefix_cache_ttl", "cache_agnostic_scheduling", "allowlist_logs"]
                    ),
                    unique=True,
                ),
            }
        ),
        "provenance": st.dictionaries(st.sampled_from(FACT_PATHS), PROVENANCE, max_size=4),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=FACTS,
    profile=st.sampled_from(["pcc-strict", "multi-tenant-baseline"]),
    fail_on=st.sampled_from(SEVERITIES),
    use_waivers=st.booleans(),
    broken_engine=st.integers(min_value=0, max_value=9),
    width=st.integers(min_value=20, max_value=200),
)
def test_any_evaluated_report_renders_in_every_format(
    zoo: Zoo,
    sarif_validator: jsonschema.Draft7Validator,
    data: dict[str, Any],
    profile: str,
    fail_on: str,
    use_waivers: bool,
    broken_engine: int,
    width: int,
) -> None:
    facts = facts_from_data(data)
    engine = RaisingEngine() if broken_engine == 0 else zoo.evaluator.engine
    evaluator = Evaluator(zoo.rulebook, load_profile(profile, zoo.rulebook), engine)
    report = evaluator.evaluate(facts, waivers=zoo.waivers if use_waivers else None, fail_on=fail_on)

    outputs = {name: formatter(report) for name, formatter in FORMATS.items()}
    assert Report.model_validate_json(outputs["json"]) == stable_report(report)
    log = assert_valid_sarif(sarif_validator, outputs["sarif"])
    assert len(log["runs"][0]["results"]) == len(report.results)
    junit = ET.fromstring(outputs["junit"])
    assert int(junit.get("tests", -1)) == len(report.results) + len(report.problems)
    assert "<script" not in outputs["html"]
    for result in report.results:
        assert result.id in outputs["markdown"]
        assert result.id in outputs["table"] or result.verdict == Verdict.NOT_APPLICABLE
    coloured = render_table(report, color=True, width=width)
    # Terminal cells, not code points: wide and zero-width characters count as the terminal shows them.
    assert all(cell_len(line) <= width for line in re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines())
