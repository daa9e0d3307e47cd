"""Inputs that used to end as "internal error" with no place: each is now a one-line error naming it.

Documents go through the one loader (``pccguard.files.sourcefile.load_document``),
so facts, waivers, profiles and the plugin config all get the same messages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pccguard.enforcement.config import CONFIG_ENV, load_plugin_config
from pccguard.errors import InputError
from pccguard.files.sourcefile import load_document
from tests.core.support import MINIMAL_FACTS, assert_clean_error, run_cli

HEAD = "deployment:\n  name: x\n  engine: vllm\n"
DIGITS = "9" * 5000


def _no_internal_error(result) -> None:
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("name", "text", "needles"),
    [
        ("nul.yaml", HEAD + "tenancy: {mode: mu\0lti}\n", ["nul.yaml:4", "NUL byte"]),
        ("nul.json", '{"deployment": {"engine": "vllm"},\n "x": "\0"}\n', ["nul.json:2", "NUL byte"]),
        ("control.yaml", HEAD + "tenancy: {mode: mu\x01lti}\n", ["control.yaml:4", "U+0001"]),
        ("bigint.yaml", HEAD + f"tenancy:\n  tenants: {DIGITS}\n", ["bigint.yaml:5", "5000 digits"]),
        (
            "bigint.json",
            '{"deployment": {"engine": "vllm"},\n "tenancy": {"tenants": ' + DIGITS + "}}\n",
            ["bigint.json:2", "5000 digits"],
        ),
        ("bigkey.yaml", HEAD + f"? {DIGITS}\n: 1\n", ["bigkey.yaml:4", "5000 digits"]),  # explicit: long key
        ("date.yaml", HEAD + "runtime: {started: 2026-13-01}\n", ["date.yaml:4", "2026-13-01"]),
        ("bool.yaml", HEAD + 'x: !!bool "maybe"\n', ["bool.yaml:4", "'maybe'"]),
        ("stamp.yaml", HEAD + 'x: !!timestamp "soon"\n', ["stamp.yaml:4", "'soon'"]),
        (
            "version.yaml",
            f'deployment:\n  engine: vllm\n  engine_version: "{DIGITS}.1"\n',
            ["version.yaml:3", "engine_version"],
        ),
    ],
)
def test_facts_file_problems_name_file_and_line(write, name: str, text: str, needles: list[str]):
    path = write(name, "x")
    path.write_bytes(text.encode("utf-8"))
    output = path.parent / "report.json"
    result = run_cli("check", path, "--format", "json", "-o", output)
    assert_clean_error(result, *needles)
    assert DIGITS not in result.stderr, "a 5,000-digit value is not echoed whole"
    assert not output.exists()


def test_invalid_unquoted_date_in_waivers(write):
    facts = write("facts.yaml", MINIMAL_FACTS)
    waivers = write(
        "waivers.yaml",
        """
        waivers:
          - rule: PCC-S-001
            scope: "*"
            justification: scrubbing is being rolled out this quarter
            owner: platform-security
            expires: 2026-13-01
        """,
    )
    result = run_cli("check", facts, "--waivers", waivers)
    assert_clean_error(result, "waivers.yaml:6", "2026-13-01", "month must be in 1..12")


def test_invalid_date_in_a_profile_file(write):
    facts = write("facts.yaml", MINIMAL_FACTS)
    profile = write("profile.yaml", "name: p\ndescription: a profile\nparams: {since: 2026-02-30}\n")
    assert_clean_error(run_cli("check", facts, "--profile", profile), "profile.yaml:3", "2026-02-30")


def test_plugin_config_goes_through_the_same_loader(write):
    config = write("pccguard.yaml", "profile: pcc-strict\nopa_timeout: " + DIGITS + "\n")
    with pytest.raises(InputError, match=r"pccguard\.yaml:2: integer with 5000 digits"):
        load_plugin_config({CONFIG_ENV: str(config)})


def test_loader_error_is_one_line_with_a_place(tmp_path: Path):
    path = tmp_path / "doc.yaml"
    path.write_bytes(b"a: 1\nb: \x00\n")
    with pytest.raises(InputError) as caught:
        load_document(path)
    assert caught.value.one_line() == f"{path}:2: contains a NUL byte (not a text file?)"


# --------------------------------------------------------------------------- output places


@pytest.mark.parametrize("folder", ["/proc/self", "/proc"])
def test_output_where_even_root_cannot_create_a_file(write, folder: str):
    facts = write("facts.yaml", MINIMAL_FACTS)
    output = f"{folder}/pccguard-report.json"
    result = run_cli("check", facts, "--format", "json", "-o", output)
    assert_clean_error(result, output, "cannot create a file")
    _no_internal_error(result)


def test_output_under_a_regular_file(write, tmp_path: Path):
    facts = write("facts.yaml", MINIMAL_FACTS)
    for command in (["check", facts], ["facts", facts], ["schema"]):
        result = run_cli(*command, "-o", facts / "report.json")
        assert_clean_error(result, str(facts), "not a directory")


def test_control_characters_in_a_path_stay_on_one_line(write, tmp_path: Path):
    facts = write("facts.yaml", MINIMAL_FACTS)
    output = tmp_path / "new\nline" / "report.json"
    assert_clean_error(run_cli("check", facts, "-o", output), "new\\x0aline", "does not exist")


# --------------------------------------------------------------------------- rules new


@pytest.mark.parametrize("folder", ["/proc/self/pccguard-rules", "/proc/pccguard-rules", "/proc/self"])
def test_rules_new_into_an_unwritable_directory(folder: str):
    result = run_cli(
        "rules", "new", "ORG-S-901", "--dir", folder, "--requirement", "S", "--optimization", "prefix_caching"
    )
    assert_clean_error(result, folder, "cannot write the scaffold")
    _no_internal_error(result)


def test_rules_new_under_a_regular_file_leaves_nothing(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(
        "rules",
        "new",
        "ORG-S-902",
        "--dir",
        blocker,
        "--requirement",
        "S",
        "--optimization",
        "prefix_caching",
    )
    assert_clean_error(result, str(blocker), "Not a directory")
    assert blocker.read_text() == "x"


def test_rules_new_that_fails_part_way_removes_what_it_wrote(tmp_path: Path):
    """A dangling symlink where a fixture goes passes the existence check but not the exclusive create."""
    folder = tmp_path / "rules"
    fixtures = folder / "fixtures" / "ORG-S-903"
    fixtures.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.yaml"
    (fixtures / "pass.yaml").symlink_to(elsewhere)
    result = run_cli(
        "rules", "new", "ORG-S-903", "--dir", folder, "--requirement", "S", "--optimization", "prefix_caching"
    )
    assert_clean_error(result, "refusing to overwrite", "pass.yaml")
    assert not (folder / "org_s_903.rego").exists(), "the rule written first is removed again"
    assert not elsewhere.exists(), "a symlink is not written through"
