"""Rules never disappear or change silently: unreadable entries, empty directories and overrides are visible."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pccguard.errors import RuleError
from pccguard.policy.rulebook import load_rulebook
from tests.core.rule_factory import EXAMPLE, PROFILE, write_rule
from tests.core.support import assert_clean_error, run_cli

NEVER_DENIES = 'deny contains {"fact": "a", "params": {}} if {\n\tfalse\n}\n'


def test_broken_symlink_in_a_rules_directory_is_an_error(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", NEVER_DENIES)
    (tmp_path / "more").symlink_to(tmp_path / "missing-directory")
    result = run_cli("check", EXAMPLE, "--rules", tmp_path)
    assert_clean_error(result, str(tmp_path / "more"), "broken symbolic link")


def test_fifo_named_rego_is_an_error_not_a_hang(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", NEVER_DENIES)
    os.mkfifo(tmp_path / "pipe.rego")
    result = run_cli("check", EXAMPLE, "--rules", tmp_path, timeout=30)
    assert_clean_error(result, str(tmp_path / "pipe.rego"), "not a regular file")


def test_unreadable_subdirectory_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads every directory, so the permission error is simulated where os.walk lists one.
    write_rule(tmp_path / "sub", "ACME-S-001", NEVER_DENIES)
    real_scandir = os.scandir
    locked = str(tmp_path / "sub")

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(RuleError) as info:
        load_rulebook([tmp_path])
    assert locked in info.value.one_line()
    assert "Permission denied" in info.value.one_line()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_unreadable_subdirectory_on_disk(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    write_rule(sub, "ACME-S-001", NEVER_DENIES)
    sub.chmod(0)
    try:
        assert_clean_error(run_cli("check", EXAMPLE, "--rules", tmp_path), str(sub))
    finally:
        sub.chmod(0o755)


def test_empty_rules_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    assert_clean_error(run_cli("check", EXAMPLE, "--rules", tmp_path), str(tmp_path), "no rules")


@pytest.fixture(scope="module")
def overridden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PCC-S-004 (critical) replaced by a custom rule that never denies, at severity high."""
    folder = tmp_path_factory.mktemp("override")
    write_rule(folder, "PCC-S-004", NEVER_DENIES, severity="high")
    return folder


def _check(folder: Path, fmt: str) -> str:
    result = run_cli("check", EXAMPLE, "--profile", PROFILE, "--rules", folder, "--format", fmt)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


def test_override_is_recorded_in_the_rulebook(overridden: Path) -> None:
    rulebook = load_rulebook([overridden])
    assert rulebook.overrides == {"PCC-S-004": "rules/pcc/memory/pcc_s_004.rego"}
    assert rulebook.rules["PCC-S-004"].overrides == "rules/pcc/memory/pcc_s_004.rego"
    assert rulebook.rules["PCC-S-001"].overrides is None


def test_override_in_json(overridden: Path) -> None:
    doc = json.loads(_check(overridden, "json"))
    rule = next(r for r in doc["results"] if r["rule"]["id"] == "PCC-S-004")
    assert rule["verdict"] == "pass"
    assert rule["rule"]["overrides"] == "rules/pcc/memory/pcc_s_004.rego"


def test_override_in_table(overridden: Path) -> None:
    text = _check(overridden, "table")
    assert "Overrides" in text
    assert "overrides the shipped PCC-S-004" in " ".join(text.split())


def test_override_in_sarif(overridden: Path) -> None:
    run = json.loads(_check(overridden, "sarif"))["runs"][0]
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "PCC-S-004")
    assert rule["properties"]["overrides"] == "rules/pcc/memory/pcc_s_004.rego"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert any(
        n["descriptor"]["id"] == "pccguard/rule-overridden" and n["associatedRule"]["id"] == "PCC-S-004"
        for n in notes
    )


def test_override_in_junit(overridden: Path) -> None:
    root = ET.fromstring(_check(overridden, "junit"))
    case = next(c for c in root.iter("testcase") if c.get("name", "").startswith("PCC-S-004 "))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["overrides"] == "rules/pcc/memory/pcc_s_004.rego"
    assert "overrides the shipped PCC-S-004" in (case.findtext("system-out") or "")


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_override_in_markdown_and_html(overridden: Path, fmt: str) -> None:
    text = _check(overridden, fmt).replace("\\_", "_")
    assert "overrides the shipped PCC-S-004 (rules/pcc/memory/pcc_s_004.rego)" in text


def test_no_override_notice_without_overrides(tmp_path: Path) -> None:
    write_rule(tmp_path, "ACME-S-001", NEVER_DENIES)
    assert "Overrides" not in _check(tmp_path, "table")
