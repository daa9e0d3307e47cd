"""Bad input gets a one-line error and exit 2; nothing is lost; nothing fails open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.support import MINIMAL_FACTS, assert_clean_error, run_cli

RULE_HEADER = """\
# METADATA
# title: Custom rule
# description: A custom rule for tests.
# custom:
#   id: ACME-S-001
#   requirement: S
#   optimization: paging
#   severity: high
#   threats: [residue]
#   references: ["NIST SP 800-53 SC-4"]
#   mitigation: {mitigation}
#   message: "custom finding"
package pcc.rules.acme_s_001

import data.pcc.lib
import rego.v1

default applicable := false

applicable := true
"""


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


def custom_rule(body: str, mitigation: str = "scrub_freed_kv") -> str:
    return RULE_HEADER.format(mitigation=mitigation) + body


def test_valid_facts_report_and_exit_code(write):
    facts = write("facts.yaml", MINIMAL_FACTS)
    result = run_cli("check", facts, "--format", "json")
    assert result.returncode == 1, result.stderr  # failures at or above 'low'
    report = json.loads(result.stdout)
    verdicts = {r["rule"]["id"]: r["verdict"] for r in report["results"]}
    assert verdicts["PCC-S-001"] == "fail"
    assert "pass" not in {verdicts["PCC-S-001"], verdicts["PCC-S-003"]}


def test_compliant_facts_exit_zero(write):
    facts = write(
        "ok.yaml",
        """
        deployment: {name: ok, engine: vllm}
        tenancy: {mode: single}
        optimizations:
          paging: {enabled: true, scrub_on_free: true}
          prefix_caching: {enabled: false}
        """,
    )
    result = run_cli("check", facts, "--format", "json", "--rules", _only_two_rules(facts.parent))
    report = json.loads(result.stdout)
    ours = {
        r["rule"]["id"]: r["verdict"]
        for r in report["results"]
        if r["rule"]["id"] in ("PCC-S-001", "PCC-S-003")
    }
    assert ours == {"PCC-S-001": "pass", "PCC-S-003": "not_applicable"}


def _only_two_rules(folder: Path) -> Path:
    """A custom rules directory that adds no rule (the shipped rulebook still applies).

    It holds one library module: an empty ``--rules`` directory is itself an error.
    """
    empty = folder / "no-extra-rules"
    empty.mkdir(exist_ok=True)
    (empty / "noop.rego").write_text("package pcc.lib.noop\n\nimport rego.v1\n\nnoop := true\n")
    return empty


@pytest.mark.parametrize(
    ("name", "text", "needles"),
    [
        ("broken.yaml", "deployment: {engine: vllm\n  name: [", ["broken.yaml:", "malformed YAML/JSON"]),
        ("broken.json", '{"deployment": {"engine": "vllm",}}', ["broken.json:1", "malformed JSON"]),
        ("list.yaml", "- 1\n- 2\n", ["facts document must be a mapping"]),
        ("empty.yaml", "", ["empty"]),
        (
            "typed.yaml",
            "deployment: {engine: vllm}\noptimizations:\n  paging:\n    enabled: maybe\n",
            ["typed.yaml:4", "optimizations.paging.enabled"],
        ),
        (
            "typo.yaml",
            "deployment: {engine: vllm}\noptimizations:\n  prefix_caching:\n    enabeld: true\n",
            ["typo.yaml:4", "unknown field"],
        ),
        (
            "dup.yaml",
            "deployment: {engine: vllm}\ndeployment: {engine: sglang}\n",
            ["dup.yaml", "duplicate key 'deployment'"],
        ),
        (
            "mitigation.yaml",
            "deployment: {engine: vllm}\nruntime: {mitigations_active: [scrub_everything]}\n",
            ["unknown mitigation id 'scrub_everything'"],
        ),
        ("noengine.yaml", "deployment: {name: x}\n", ["deployment.engine"]),
        (
            "nan.json",
            '{"deployment": {"engine": "x"}, "optimizations": {"prefix_caching": {"ttl_seconds": NaN}}}',
            ["NaN"],
        ),
        (
            "inf.yaml",
            "deployment: {engine: x}\noptimizations:\n  prefix_caching: {ttl_seconds: .inf}\n",
            ["inf.yaml:3", "ttl_seconds"],
        ),
        ("bomb.yaml", BOMB, ["alias bomb"]),
        (
            "binary.yaml",
            "deployment: !!python/object:os.system {engine: x}\n",
            ["binary.yaml:1", "malformed"],
        ),
    ],
)
def test_malformed_facts(write, name, text, needles):
    path = write(name, text) if text else _empty(write, name)
    output = path.parent / "report.json"
    result = run_cli("check", path, "--format", "json", "--output", output)
    assert_clean_error(result, *needles)
    assert not output.exists()
    assert result.stdout == ""


def _empty(write, name: str) -> Path:
    path = write(name, "x")
    path.write_text("", encoding="utf-8")
    return path


def test_missing_file():
    assert_clean_error(run_cli("check", "does/not/exist.yaml"), "does/not/exist.yaml", "no such file")


def test_rego_syntax_error_names_file_and_line(tmp_path, write):
    rules = tmp_path / "rules"
    write("rules/acme_s_001.rego", custom_rule("deny contains f if {\n\tf := \n}\n"))
    facts = write("facts.yaml", MINIMAL_FACTS)
    result = run_cli("check", facts, "--rules", rules)
    assert_clean_error(result, "acme_s_001.rego:", "Rego compile error")


def test_unknown_mitigation_in_rule_metadata(tmp_path, write):
    rules = tmp_path / "rules"
    write("rules/acme_s_001.rego", custom_rule("deny contains {} if false\n", mitigation="pray"))
    lint = run_cli("rules", "lint", "--rules", rules)
    assert lint.returncode == 1
    assert "PCC006 unknown mitigation id 'pray'" in lint.stdout


def test_rule_without_metadata_is_an_input_error(tmp_path, write):
    rules = tmp_path / "rules"
    write("rules/x.rego", "package pcc.rules.x\n\nimport rego.v1\n\ndefault applicable := false\n")
    facts = write("facts.yaml", MINIMAL_FACTS)
    assert_clean_error(run_cli("check", facts, "--rules", rules), "x.rego", "METADATA")


def test_expired_waiver_is_a_failure_not_a_waiver(write):
    facts = write("facts.yaml", MINIMAL_FACTS)
    waivers = write(
        "waivers.yaml",
        """
        waivers:
          - rule: PCC-S-001
            scope: "*"
            justification: scrubbing is being rolled out this quarter
            owner: platform-security
            expires: 2020-01-31
        """,
    )
    result = run_cli("check", facts, "--waivers", waivers, "--format", "json", "--fail-on", "critical")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    verdict = next(r for r in report["results"] if r["rule"]["id"] == "PCC-S-001")
    assert verdict["verdict"] == "fail"
    assert any("expired on 2020-01-31" in p for p in report["problems"])


def test_active_waiver_waives_and_is_listed(write):
    facts = write("facts.yaml", MINIMAL_FACTS)
    waivers = write(
        "waivers.yaml",
        """
        waivers:
          - rule: PCC-S-001
            scope: "test-*"
            justification: scrubbing is being rolled out this quarter
            owner: platform-security
            expires: 2999-12-31
        """,
    )
    result = run_cli("check", facts, "--waivers", waivers, "--format", "json")
    report = json.loads(result.stdout)
    verdict = next(r for r in report["results"] if r["rule"]["id"] == "PCC-S-001")
    assert verdict["verdict"] == "waived"
    assert verdict["findings"], "waived findings are still listed"
    assert verdict["waiver"]["owner"] == "platform-security"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("waivers: {rule: x}\n", "a waivers file is a mapping"),
        ("[1, 2\n", "malformed YAML/JSON"),
    ],
)
def test_malformed_waiver_file(write, text, needle):
    facts = write("facts.yaml", MINIMAL_FACTS)
    waivers = write("waivers.yaml", text)
    assert_clean_error(run_cli("check", facts, "--waivers", waivers), needle)


def test_malformed_waiver_entry_counts_as_failure(write):
    facts = write(
        "facts.yaml",
        """
        deployment: {name: ok, engine: vllm}
        optimizations:
          paging: {enabled: true, scrub_on_free: true}
          prefix_caching: {enabled: false}
        """,
    )
    waivers = write(
        "waivers.yaml",
        "waivers:\n  - rule: PCC-S-001\n    scope: '*'\n    justification: short\n    owner: me\n    expires: someday\n",
    )
    result = run_cli(
        "check", facts, "--waivers", waivers, "--format", "json", "--rules", _only_two_rules(facts.parent)
    )
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert any("malformed waiver" in p for p in report["problems"])


def test_unreachable_opa_server(write):
    facts = write("facts.yaml", MINIMAL_FACTS)
    result = run_cli("check", facts, "--opa-url", "http://127.0.0.1:9", "--opa-timeout", "2")
    assert_clean_error(result, "unreachable")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["check"], "give a facts file"),
        (["check", "x.yaml", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["check", "x.yaml", "--fail-on", "severe"], "invalid choice"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["check", "--engine", "vllm"], "needs the engine's arguments after '--'"),
        (["check", "--engine", "tgi", "--", "--port", "1"], "unknown engine 'tgi'"),
        (["check", "--engine", "vllm", "--", "model-dir"], "needs vllm installed"),
        (["check", "x.yaml", "--opa-url", "ftp://x"], "--opa-url must be"),
        (["rules"], "rules needs an action"),
        (["rules", "explain", "PCC-X-999"], "unknown rule id"),
        (["check", "x.yaml", "--profile", "lenient"], "unknown profile 'lenient'"),
        (["schema", "--", "x"], "takes no engine arguments"),
        ([], "no command given"),
    ],
)
def test_usage_errors(write, args, needle):
    facts = str(write("x.yaml", MINIMAL_FACTS))
    result = run_cli(*[facts if a == "x.yaml" else a for a in args])
    assert_clean_error(result, needle)


def test_output_is_atomic_and_previous_file_survives_errors(write, tmp_path):
    facts = write("facts.yaml", MINIMAL_FACTS)
    output = tmp_path / "report.sarif"
    first = run_cli("check", facts, "--format", "sarif", "--output", output)
    assert first.returncode == 1 and first.stdout == ""
    good = output.read_text(encoding="utf-8")
    json.loads(good)
    broken = write("broken.yaml", "deployment: [")
    second = run_cli("check", broken, "--format", "sarif", "--output", output)
    assert_clean_error(second, "malformed")
    assert output.read_text(encoding="utf-8") == good
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


def test_output_into_missing_directory(write, tmp_path):
    facts = write("facts.yaml", MINIMAL_FACTS)
    result = run_cli("check", facts, "--output", tmp_path / "nope" / "r.json", "--format", "json")
    assert_clean_error(result, "output directory does not exist")
