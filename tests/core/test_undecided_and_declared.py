"""Unknown facts never pass, profile files are validated, and a facts file cannot grant itself mitigations.

* undecided: a rule that warns about an unknown fact fails at high and critical
  severity under every profile; ``unknown_facts`` governs only lower severities;
* profiles: unknown keys, wrong types and out-of-range values are input errors,
  and a parameter left out takes its strictest value;
* declared: mitigations listed by a document whose ``runtime.plugin_active`` is
  not true give ``declared``, which fails like ``fail``, never ``enforced``.
"""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pccguard.errors import InputError, PccguardError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import FAILING_VERDICTS, Report, Verdict
from pccguard.facts.load import facts_from_data
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.metadata import SEVERITIES
from pccguard.policy.profiles import Profile, ProfileParams, UnknownFacts, load_profile, shipped_profiles
from pccguard.policy.rulebook import load_rulebook
from pccguard.reports import render
from tests.core.support import EXAMPLES, REPO, assert_clean_error, run_cli

RULEBOOK = load_rulebook()
ENGINE = EmbeddedEngine(RULEBOOK.modules())
SHIPPED = {name: load_profile(name, RULEBOOK) for name in shipped_profiles()}
EVALUATORS = {name: Evaluator(RULEBOOK, profile, ENGINE) for name, profile in SHIPPED.items()}
HIGH = {"high", "critical"}

UNDESCRIBED = {"deployment": {"engine": "vllm", "name": "prod"}}


def evaluate(doc: dict[str, Any], profile: str = "multi-tenant-baseline") -> Report:
    return EVALUATORS[profile].evaluate(facts_from_data(copy.deepcopy(doc)))


def result_of(report: Report, rule_id: str) -> Any:
    return next(r for r in report.results if r.id == rule_id)


def undecided_high(report: Report) -> list[Any]:
    """High/critical results with an unknown-fact finding that no running plugin's mitigation covers."""
    return [
        r
        for r in report.results
        if r.severity in HIGH and any(f.unknown for f in r.findings) and r.verdict != Verdict.ENFORCED
    ]


# --------------------------------------------------------------------------- 1. undecided rules


@pytest.mark.parametrize("profile", sorted(shipped_profiles()))
def test_a_deployment_nobody_described_fails_every_shipped_profile(write, profile):
    path = write("u.yaml", "deployment: {engine: vllm, name: prod}\n")
    result = run_cli("check", path, "--profile", profile)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "PASS exit 0" not in result.stdout


@pytest.mark.parametrize("profile", sorted(shipped_profiles()))
def test_undecided_high_rules_fail_and_say_why(profile):
    report = evaluate(UNDESCRIBED, profile)
    undecided = [r for r in report.results if r.severity in HIGH and any(f.unknown for f in r.findings)]
    assert undecided, "an undescribed deployment leaves high-severity rules undecided"
    for result in undecided:
        assert result.verdict == Verdict.FAIL, (result.id, result.verdict)
    only_unknown = [r for r in undecided if all(f.unknown for f in r.findings)]
    assert only_unknown and all((r.reason or "").startswith("undecided:") for r in only_unknown)
    assert report.exit_code() == 1


def test_the_baseline_still_warns_on_unknown_facts_of_lower_severity():
    report = evaluate(UNDESCRIBED, "multi-tenant-baseline")
    lower = [r for r in report.results if r.severity not in HIGH and any(f.unknown for f in r.findings)]
    assert lower and all(r.verdict == Verdict.WARN for r in lower if all(f.unknown for f in r.findings))
    strict = evaluate(UNDESCRIBED, "pcc-strict")
    assert all(result_of(strict, r.id).verdict == Verdict.FAIL for r in lower)


def test_an_advisory_rule_does_not_soften_an_undecided_high_rule():
    profile = SHIPPED["multi-tenant-baseline"].model_copy(update={"advisory": ["PCC-S-001"]})
    report = Evaluator(RULEBOOK, profile, ENGINE).evaluate(
        facts_from_data({"deployment": {"engine": "vllm"}, "optimizations": {"paging": {"enabled": True}}})
    )
    assert result_of(report, "PCC-S-001").verdict == Verdict.FAIL  # scrub_on_free unknown


# --------------------------------------------------------------------------- 2. profile schema

GOOD_PROFILE = """\
name: custom
description: a custom profile
params:
  allow_isolated_prefix_cache: true
"""


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("  unknown_facts: FAIL", "params.unknown_facts"),
        ("  unknown_facts: null", "params.unknown_facts"),
        ("  allow_metrcs: true", "params.allow_metrcs: unknown field"),
        ('  max_prefix_cache_ttl_seconds: "600"', "params.max_prefix_cache_ttl_seconds"),
        ("  max_prefix_cache_ttl_seconds: -5", "params.max_prefix_cache_ttl_seconds"),
        ("  max_prefix_cache_ttl_seconds: 1.5", "params.max_prefix_cache_ttl_seconds"),
        ("  max_prefix_cache_ttl_seconds: 99999999", "params.max_prefix_cache_ttl_seconds"),
        ('  allow_metrics: "false"', "params.allow_metrics"),
    ],
)
def test_a_slip_in_a_profile_is_an_input_error_naming_file_and_line(write, line, needle):
    path = write("custom.yaml", GOOD_PROFILE + line + "\n")
    with pytest.raises(InputError) as caught:
        load_profile(str(path), RULEBOOK)
    message = caught.value.one_line()
    assert "\n" not in message
    assert f"custom.yaml:{GOOD_PROFILE.count(chr(10)) + 1}: " in message, message
    assert needle in message, message


def test_a_slip_in_a_profile_exits_2_with_one_line(write):
    profile = write("custom.yaml", GOOD_PROFILE + "  allow_metrcs: true\n")
    facts = write("u.yaml", "deployment: {engine: vllm, name: prod}\n")
    result = run_cli("check", facts, "--profile", profile)
    assert_clean_error(result, "custom.yaml:5", "allow_metrcs", code=2)


def test_a_parameter_left_out_takes_its_strictest_value(write):
    path = write("bare.yaml", "name: bare\ndescription: nothing set\n")
    bare = load_profile(str(path), RULEBOOK)
    assert bare.params.unknown_facts is UnknownFacts.FAIL
    assert bare.params == SHIPPED["pcc-strict"].params, "every default is the pcc-strict value"
    no_unknown = write("no-unknown.yaml", GOOD_PROFILE + "  max_prefix_cache_ttl_seconds: 600\n")
    assert load_profile(str(no_unknown), RULEBOOK).params.unknown_facts is UnknownFacts.FAIL
    assert bare.policy_input()["params"]["require_reproducible_build"] is True


def test_known_params_are_exactly_what_the_rules_read():
    read: set[str] = set()
    for path in (REPO / "rules").rglob("*.rego"):
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r'\blib\.param\("([a-z_]+)"', text))
        read |= set(re.findall(r"\binput\.profile\.params\.([a-z_]+)", text))
    assert read, "the rules read profile parameters"
    # Read by the evaluator: unknown_facts, and whether an installed mitigation needs its self-test's proof.
    assert set(ProfileParams.model_fields) == read | {"unknown_facts", "allow_unverified_mitigations"}


# --------------------------------------------------------------------------- 3. declared mitigations


def _claimed(plugin_active: bool) -> dict[str, Any]:
    return {
        "deployment": {"engine": "vllm", "name": "prod"},
        "tenancy": {"mode": "multi"},
        "optimizations": {"paging": {"enabled": True, "scrub_on_free": False}},
        "runtime": {
            "plugin_active": plugin_active,
            "mitigations_active": ["scrub_freed_kv"],
            "mitigations_verified": ["scrub_freed_kv"],
        },
    }


def test_a_document_cannot_grant_itself_a_mitigation():
    declared = result_of(evaluate(_claimed(False), "pcc-strict"), "PCC-S-001")
    assert declared.verdict == Verdict.DECLARED
    assert "declared" in (declared.reason or "") and "running pccguard plugin" in (declared.reason or "")
    assert Verdict.DECLARED in FAILING_VERDICTS
    # Positive control: the facts a running plugin builds for itself enforce.
    enforced = result_of(evaluate(_claimed(True), "pcc-strict"), "PCC-S-001")
    assert enforced.verdict == Verdict.ENFORCED


def _installed(verified: list[str]) -> dict[str, Any]:
    doc = _claimed(True)
    doc["runtime"]["mitigations_verified"] = verified
    return doc


def test_an_installed_mitigation_counts_only_once_its_self_test_proved_it():
    """Installed but not verified is never ``enforced``: ``fail`` under pcc-strict, ``warn`` where allowed."""
    strict = result_of(evaluate(_installed([]), "pcc-strict"), "PCC-S-001")
    assert strict.verdict == Verdict.FAIL
    assert "installed but not verified" in (strict.reason or "") and "scrub_freed_kv" in (strict.reason or "")
    baseline = result_of(evaluate(_installed([]), "multi-tenant-baseline"), "PCC-S-001")
    assert baseline.verdict == Verdict.WARN and "not verified" in (baseline.reason or "")
    # Verifying some other mitigation does not help this rule.
    other = result_of(evaluate(_installed(["tenant_cache_salt"]), "pcc-strict"), "PCC-S-001")
    assert other.verdict == Verdict.FAIL
    # Positive control: proven by its self-test, it is enforced under both profiles.
    for profile in ("pcc-strict", "multi-tenant-baseline"):
        proven = result_of(evaluate(_installed(["scrub_freed_kv"]), profile), "PCC-S-001")
        assert proven.verdict == Verdict.ENFORCED and "verified by a self-test" in (proven.reason or "")


def test_json_and_sarif_carry_what_the_self_tests_verified(tmp_path):
    doc = _installed(["scrub_freed_kv"])
    doc["runtime"]["selftests"] = [
        {
            "mitigation": "scrub_freed_kv",
            "passed": True,
            "checked": "canary written, freed, zeroed, read back as zeros",
            "blocks": 4,
            "layers": 2,
            "ranks": 1,
            "device": "cpu",
            "seconds": 0.01,
        }
    ]
    report = evaluate(doc, "pcc-strict")
    as_json = json.loads(render(report, "json"))
    assert as_json["deployment"]["mitigations_verified"] == ["scrub_freed_kv"]
    assert as_json["deployment"]["selftests"][0]["blocks"] == 4
    sarif = json.loads(render(report, "sarif"))
    props = sarif["runs"][0]["properties"]["deployment"]
    assert props["mitigations_verified"] == ["scrub_freed_kv"] and props["selftests"][0]["layers"] == 2


def test_a_facts_file_cannot_claim_a_running_plugin(tmp_path):
    """``plugin_active: true`` in a document is a claim too: read from a file, the mitigations are declared."""
    from pccguard.facts.load import load_facts

    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(_claimed(True)), encoding="utf-8")
    facts = load_facts(path)
    assert facts.runtime.plugin_active is False and facts.runtime.mitigations_active
    result = run_cli("check", path, "--profile", "pcc-strict", "-f", "json")
    verdicts = {r["rule"]["id"]: r["verdict"] for r in json.loads(result.stdout)["results"]}
    assert verdicts["PCC-S-001"] == "declared" and result.returncode == 1


def test_declared_fails_the_run_like_fail():
    doc = {
        "deployment": {"engine": "vllm", "name": "prod"},
        "tenancy": {"mode": "single"},
        "optimizations": {"paging": {"enabled": True, "scrub_on_free": False}},
        "runtime": {"plugin_active": False, "mitigations_active": ["scrub_freed_kv"]},
    }
    report = evaluate(doc, "pcc-strict")
    assert result_of(report, "PCC-S-001") in report.failing()
    assert report.exit_code() == 1


def test_a_declared_mitigation_never_makes_a_verdict_worse():
    """Where the rule would only warn, a claimed mitigation leaves it a warning (with a note)."""
    base = evaluate(UNDESCRIBED, "multi-tenant-baseline")
    warned = [r for r in base.results if r.verdict == Verdict.WARN and r.findings]
    assert warned
    mitigations = sorted({f.mitigation for r in warned for f in r.findings})
    claimed = {**UNDESCRIBED, "runtime": {"plugin_active": False, "mitigations_active": mitigations}}
    report = evaluate(claimed, "multi-tenant-baseline")
    for before in warned:
        after = result_of(report, before.id)
        assert after.verdict == Verdict.WARN, (before.id, after.verdict)
        assert "declared" in (after.reason or "")


def test_every_report_format_tells_declared_from_enforced():
    declared = evaluate(_claimed(False), "pcc-strict")
    enforced = evaluate(_claimed(True), "pcc-strict")

    table = render(declared, "table")
    assert re.search(r"DECLARED\s+PCC-S-001", table), table
    assert re.search(r"\d+ declared", table), table
    assert "ENFORCED" in render(enforced, "table")

    data = json.loads(render(declared, "json"))
    assert {r["rule"]["id"]: r["verdict"] for r in data["results"]}["PCC-S-001"] == "declared"
    assert json.loads(render(enforced, "json"))["results"]

    sarif = json.loads(render(declared, "sarif"))["runs"][0]
    entry = next(r for r in sarif["results"] if r["ruleId"] == "PCC-S-001")
    assert (entry["kind"], entry["level"]) == ("fail", "error")
    assert entry["properties"]["declared"] is True and "enforced" not in entry["properties"]
    assert sarif["invocations"][0]["exitCode"] == 1
    sarif_ok = json.loads(render(enforced, "sarif"))["runs"][0]
    entry_ok = next(r for r in sarif_ok["results"] if r["ruleId"] == "PCC-S-001")
    assert entry_ok["kind"] == "pass" and entry_ok["properties"]["enforced"] is True

    root = ET.fromstring(render(declared, "junit").split("\n", 1)[1])
    case = next(c for c in root.iter("testcase") if c.get("name", "").startswith("PCC-S-001 "))
    failure = case.find("failure")
    assert failure is not None and "declared" in (failure.text or "")

    assert "**DECLARED**" in render(declared, "markdown")
    html = render(declared, "html")
    assert 'class="badge v-declared">DECLARED<' in html and ".v-declared" in html


# --------------------------------------------------------------------------- 4. properties

RULE_IDS = sorted(RULEBOOK.rules)
BASE_FACTS: dict[str, Any] = yaml.safe_load((EXAMPLES / "vllm-hardened.yaml").read_text(encoding="utf-8"))


def _leaves(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in _leaves(value, (*prefix, key))]
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        return [leaf for index, value in enumerate(data) for leaf in _leaves(value, (*prefix, index))]
    return [prefix]


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def _accepts_unknown(path: tuple[Any, ...]) -> bool:
    doc = copy.deepcopy(BASE_FACTS)
    _set(doc, path, None)
    try:
        facts_from_data(doc)
    except PccguardError:
        return False
    return True


#: Facts of the example that may be unknown (null), each alone still a valid document.
NULLABLE = [p for p in _leaves(BASE_FACTS) if p[0] not in ("runtime", "provenance") and _accepts_unknown(p)]
MITIGATIONS = sorted(
    set(BASE_FACTS["runtime"]["mitigations_active"]) | {"scrub_freed_kv", "tenant_cache_salt"}
)

profiles = st.fixed_dictionaries(
    {"name": st.just("generated"), "description": st.just("generated by hypothesis")},
    optional={
        "params": st.fixed_dictionaries(
            {},
            optional={
                "unknown_facts": st.sampled_from([u.value for u in UnknownFacts]),
                "max_prefix_cache_ttl_seconds": st.integers(0, 86_400),
                **{
                    name: st.booleans()
                    for name, field in ProfileParams.model_fields.items()
                    if field.annotation is bool
                },
            },
        ),
        "exclude": st.lists(st.sampled_from(RULE_IDS), max_size=3, unique=True),
        "advisory": st.lists(st.sampled_from(RULE_IDS), max_size=12, unique=True),
        "severity": st.dictionaries(st.sampled_from(RULE_IDS), st.sampled_from(SEVERITIES), max_size=8),
    },
)

facts_docs = st.builds(
    lambda unknown, plugin, active: (unknown, plugin, active),
    st.lists(st.sampled_from(NULLABLE), min_size=1, max_size=40, unique=True),
    st.booleans(),
    st.lists(st.sampled_from(MITIGATIONS), max_size=4, unique=True),
)


def _facts_doc(unknown: list[tuple[Any, ...]], plugin: bool, active: list[str]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_FACTS)
    for path in unknown:
        _set(doc, path, None)
    doc["runtime"] = {"plugin_active": plugin, "mitigations_active": active, "mitigations_verified": active}
    return doc


def test_the_generators_reach_undecided_rules():
    assert len(NULLABLE) > 40, "the example has many facts that can be unknown"
    report = EVALUATORS["multi-tenant-baseline"].evaluate(
        facts_from_data(_facts_doc(NULLABLE, False, [])), fail_on="low"
    )
    assert undecided_high(report) and report.exit_code() == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile_doc=profiles, facts=facts_docs)
def test_no_profile_passes_undecided_high_severity_rules(profile_doc, facts):
    profile = Profile.model_validate(profile_doc)  # generated within the schema: never an input error
    profile.check_against(RULEBOOK, "generated")
    try:
        deployment = facts_from_data(_facts_doc(*facts))
    except PccguardError:
        assume(False)
        return
    report = Evaluator(RULEBOOK, profile, ENGINE).evaluate(deployment, fail_on="low")  # the CLI's default
    undecided = undecided_high(report)
    for result in undecided:
        assert result.verdict in FAILING_VERDICTS | {Verdict.ERROR}, (result.id, result.verdict)
    if undecided:
        assert report.exit_code() != 0
    if report.exit_code() == 0:
        assert not undecided
