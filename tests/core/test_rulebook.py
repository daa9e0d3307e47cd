"""The shipped rulebook: catalog coverage, fixtures, lint, profiles, custom directories, scaffolding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pccguard.authoring.fixtures import discover, missing_coverage, run_fixtures
from pccguard.authoring.lint import lint_rules
from pccguard.facts.catalog import load_catalog
from pccguard.facts.mitigations import is_valid_mitigation
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.profiles import load_profile, shipped_profiles
from pccguard.policy.rulebook import load_rulebook
from tests.core.support import run_cli

RULEBOOK = load_rulebook()
ENGINE = EmbeddedEngine(RULEBOOK.modules())
FIXTURES = discover(RULEBOOK)


def test_every_catalog_row_and_letter_is_covered():
    covered = {(r.optimization, r.requirement) for r in RULEBOOK.rules.values()}
    missing = sorted(load_catalog().endangered_pairs() - covered)
    assert missing == [], f"catalog rows × letters without a rule: {missing}"


def test_rule_metadata_references_are_valid():
    catalog = load_catalog()
    for rule in RULEBOOK.rules.values():
        assert rule.optimization in catalog.all_ids(), rule.id
        assert is_valid_mitigation(rule.mitigation), rule.id
        assert rule.id.startswith(f"PCC-{rule.requirement}-"), rule.id


def test_every_rule_has_pass_and_fail_fixtures():
    assert missing_coverage(RULEBOOK, FIXTURES) == []


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f"{f.rule_id}/{f.path.name}")
def test_fixture(fixture):
    (outcome,) = run_fixtures(RULEBOOK, ENGINE, [fixture])
    assert outcome.ok, f"expected {fixture.expect.value}, got {outcome.actual.value}: {outcome.detail}"


def test_shipped_rulebook_lints_clean():
    errors = [str(p) for p in lint_rules([]) if p.severity == "error"]
    assert errors == []


def test_profiles_are_data_over_the_same_rules():
    profiles = shipped_profiles()
    assert {"pcc-strict", "multi-tenant-baseline"} <= set(profiles)
    for name in profiles:
        profile = load_profile(name, RULEBOOK)
        assert set(profile.exclude) <= set(RULEBOOK.rules)
    strict, baseline = load_profile("pcc-strict"), load_profile("multi-tenant-baseline")
    assert strict.params.max_prefix_cache_ttl_seconds == 0
    assert baseline.params.max_prefix_cache_ttl_seconds > 0


def test_lint_flags_every_portable_subset_violation(tmp_path):
    rule = (Path(__file__).parent / "data_bad_rule.rego").read_text()
    (tmp_path / "bad.rego").write_text(rule)
    codes = {p.code for p in lint_rules([tmp_path]) if str(tmp_path) in p.path}
    assert {
        "PCC101",
        "PCC102",
        "PCC103",
        "PCC104",
        "PCC105",
        "PCC106",
        "PCC107",
        "PCC108",
        "PCC109",
        "PCC110",
    } <= codes


def test_lint_cli_reports_and_fails(tmp_path):
    (tmp_path / "bad.rego").write_text((Path(__file__).parent / "data_bad_rule.rego").read_text())
    result = run_cli("rules", "lint", "--rules", tmp_path)
    assert result.returncode == 1
    assert "PCC101" in result.stdout and "bad.rego:" in result.stdout


def test_scaffold_then_lint_and_test_pass(tmp_path):
    created = run_cli(
        "rules",
        "new",
        "ACME-P-001",
        "--dir",
        tmp_path,
        "--requirement",
        "P",
        "--optimization",
        "global_profiling",
    )
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "acme_p_001.rego").is_file()
    lint = run_cli("rules", "lint", "--rules", tmp_path)
    assert lint.returncode == 0, lint.stdout
    tested = run_cli("rules", "test", "--rules", tmp_path, "--rule", "ACME-P-001")
    assert tested.returncode == 0, tested.stdout
    assert "2 passed, 0 failed" in tested.stdout
    again = run_cli(
        "rules",
        "new",
        "ACME-P-001",
        "--dir",
        tmp_path,
        "--requirement",
        "P",
        "--optimization",
        "global_profiling",
    )
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def _shipped_source(rule_id: str) -> str:
    (found,) = [f for f in RULEBOOK.rule_files if f.meta is not None and f.meta.id == rule_id]
    return found.source


def test_shipped_rule_paths_are_relative_to_the_rules_root():
    assert RULEBOOK.rules["PCC-S-001"].path == "rules/pcc/memory/pcc_s_001.rego"


def test_custom_rule_overrides_shipped_rule_by_id(tmp_path):
    source = _shipped_source("PCC-S-001")
    (tmp_path / "override.rego").write_text(source.replace("severity: high", "severity: low"))
    rulebook = load_rulebook([tmp_path])
    assert rulebook.rules["PCC-S-001"].severity == "low"
    assert Path(rulebook.rules["PCC-S-001"].path).parent == tmp_path
    assert len(rulebook.rules) == len(RULEBOOK.rules)
    EmbeddedEngine(rulebook.modules())  # exactly one package per id compiles


def test_duplicate_ids_in_one_custom_directory_are_an_error(tmp_path):
    shipped = _shipped_source("PCC-S-001")
    (tmp_path / "a.rego").write_text(shipped)
    (tmp_path / "b.rego").write_text(shipped)
    result = run_cli("rules", "list", "--rules", tmp_path)
    assert result.returncode == 2 and "defined twice" in result.stderr


def test_rules_list_json_and_explain():
    listed = run_cli("rules", "list", "--format", "json")
    rules = json.loads(listed.stdout)
    assert [r["id"] for r in rules] == sorted(RULEBOOK.rules)
    explained = run_cli("rules", "explain", "PCC-S-001")
    assert (
        explained.returncode == 0
        and "scrub_freed_kv" in explained.stdout
        and "fixtures (" in explained.stdout
    )


def test_rules_test_cli_runs_the_same_fixtures():
    result = run_cli("rules", "test", timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    assert f"{len(FIXTURES)} passed, 0 failed" in result.stdout


def test_fixture_folder_with_a_typo_is_an_error(tmp_path):
    (tmp_path / "fixtures" / "PCC-S-0001").mkdir(parents=True)
    (tmp_path / "noop.rego").write_text("package pcc.lib.noop\n\nimport rego.v1\n\nnoop := true\n")
    result = run_cli("rules", "test", "--rules", tmp_path)
    assert result.returncode == 2 and "PCC-S-0001" in result.stderr


def test_enforced_needs_every_finding_mitigation():
    """A mitigation that the profile does not accept for a finding does not make the rule enforced."""
    from pccguard.evaluation.evaluator import Evaluator
    from pccguard.facts.load import facts_from_data

    facts = {
        "deployment": {"engine": "vllm"},
        "tenancy": {"mode": "multi"},
        "optimizations": {"prefix_caching": {"enabled": True, "isolation": "server_salt"}},
    }
    verdicts = {}
    for profile in ("pcc-strict", "multi-tenant-baseline"):
        evaluator = Evaluator(RULEBOOK, load_profile(profile, RULEBOOK), ENGINE)
        for active in ([], ["prefix_cache_ttl"], ["disable:prefix_caching"]):
            doc = {
                **facts,
                "runtime": {
                    "plugin_active": True,
                    "mitigations_active": active,
                    "mitigations_verified": active,
                },
            }
            result = next(r for r in evaluator.evaluate(facts_from_data(doc)).results if r.id == "PCC-S-003")
            verdicts[(profile, tuple(active))] = result.verdict.value
    assert verdicts[("pcc-strict", ())] == "fail"
    assert verdicts[("pcc-strict", ("prefix_cache_ttl",))] == "fail"
    assert verdicts[("pcc-strict", ("disable:prefix_caching",))] == "enforced"
    assert verdicts[("multi-tenant-baseline", ())] == "fail"
    assert verdicts[("multi-tenant-baseline", ("prefix_cache_ttl",))] == "enforced"


def test_catalog_doc_is_generated_from_the_catalog():
    import subprocess
    import sys

    from tests.core.support import REPO

    proc = subprocess.run(
        [sys.executable, "scripts/gen_catalog_doc.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
