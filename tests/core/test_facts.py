"""Facts: schema, provenance, unknown versus false, versions, shipped examples."""

from __future__ import annotations

import json

import jsonschema
import pytest

from pccguard.evaluation.settings import build_evaluator
from pccguard.facts.load import facts_from_data, load_facts
from pccguard.facts.model import DeploymentFacts, parse_version
from tests.core.support import EXAMPLES, run_cli


def test_schema_command_prints_a_valid_json_schema(tmp_path):
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    example = load_facts(sorted(EXAMPLES.glob("*.yaml"))[0]).model_dump(mode="json", exclude={"provenance"})
    example["deployment"].pop("version_tuple", None)
    jsonschema.validate(example, schema)


def test_provenance_from_file_lines(write):
    path = write(
        "facts.yaml",
        """
        deployment:
          engine: vllm
        optimizations:
          prefix_caching:
            enabled: true
        """,
    )
    facts = load_facts(path)
    prov = facts.provenance_for("optimizations.prefix_caching.enabled")
    assert prov is not None and prov.kind == "file" and prov.line == 5 and prov.uri == str(path)
    nested = facts.provenance_for("optimizations.prefix_caching.ttl_seconds")
    assert nested is not None and nested.line == 4  # nearest ancestor that was written


def test_unknown_is_distinct_from_false():
    facts = facts_from_data({"deployment": {"engine": "x"}, "optimizations": {"paging": {"enabled": False}}})
    assert facts.optimizations.paging.enabled is False
    assert facts.optimizations.prefix_caching.enabled is None
    doc = facts.policy_input()
    assert doc["optimizations"]["prefix_caching"]["enabled"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.33.0", [0, 33, 0]),
        ("v1.2", [1, 2]),
        ("0.5.23rc1+cpu", [0, 5, 23]),
        ("nightly", None),
        (None, None),
    ],
)
def test_version_tuple(text, expected):
    assert parse_version(text) == expected
    facts = DeploymentFacts.model_validate({"deployment": {"engine": "x", "engine_version": text}})
    assert facts.deployment.version_tuple == expected


def test_version_tuples_compare_numerically():
    assert parse_version("0.12.0") > parse_version("0.11.1")  # the comparison regopy's semver gets wrong
    assert parse_version("1.0.0") > parse_version("0.9.9")


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("profile", ["pcc-strict", "multi-tenant-baseline"])
def test_examples_evaluate_without_errors(path, profile):
    report = build_evaluator(profile=profile).evaluate(load_facts(path))
    assert not report.has_errors(), [r.reason for r in report.results if r.reason]


def test_examples_include_engines_without_an_adapter():
    engines = {load_facts(p).deployment.engine for p in EXAMPLE_FILES}
    assert len(engines - {"vllm", "sglang"}) >= 3, engines


def test_facts_command_normalises_a_file(write):
    path = write("f.yaml", "deployment: {engine: tgi, engine_version: 3.1.0}\n")
    result = run_cli("facts", path)
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    # Only input fields, so the output is itself a facts file (computed version_tuple is left out).
    assert "version_tuple" not in doc["deployment"] and doc["deployment"]["engine_version"] == "3.1.0"
    assert doc["provenance"]["deployment.engine"]["line"] == 1
