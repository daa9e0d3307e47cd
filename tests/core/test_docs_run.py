"""Documentation that shows commands runs: the rule-authoring guide, the examples' headers, the README.

* The worked example of ``docs/rule-authoring.md`` is extracted from the guide
  itself and run, in order, with the installed ``pccguard``, in a temporary
  directory outside the repository: ``sh`` blocks must succeed, each ``$``
  command of a ``console`` block must give the output shown (``...`` stands for
  lines or text left out) and the exit status its output names (``exit N``,
  else 0), and each block whose first line is a ``# path`` comment is written
  to that path first. Nothing is copied, so the guide cannot drift.
* Each example facts file states, in ``# expect: exit N under PROFILE``
  header lines, what ``pccguard check`` gives; every such line is checked, and
  the mitigations an example says a plugin installed must be ones its adapter
  implements.
* The README's account of ``make report`` matches what the Makefile does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.core.support import EXAMPLES, REPO, run_cli

GUIDE = REPO / "docs" / "rule-authoring.md"
README = REPO / "README.md"
MAKEFILE = REPO / "Makefile"
#: The console script of the environment running the tests: the installed CLI.
CLI_BIN = Path(sys.executable).parent
EXPECT_RE = re.compile(r"^# expect: exit (\d) under (\S+)\s*$", re.M)
FILE_BLOCK_RE = re.compile(r"# ([\w.-]+(?:/[\w.-]+)*\.(?:yaml|yml|json|rego))")


# --------------------------------------------------------------------------- the rule-authoring guide


@dataclass
class Step:
    kind: str  # "file", "sh" or "console"
    text: str
    path: str = ""
    expected: str = ""


def worked_example(guide: str) -> list[Step]:
    """The worked example's steps, in the guide's order."""
    section = guide.split("\n## A worked example\n", 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    for lang, body in re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M):
        first = body.splitlines()[0] if body else ""
        file_match = FILE_BLOCK_RE.fullmatch(first.strip())
        if lang in ("yaml", "yml", "json", "rego") and file_match:
            steps.append(Step("file", body, path=file_match.group(1)))
        elif lang == "sh":
            steps.append(Step("sh", body))
        elif lang == "console":
            command: str | None = None
            output: list[str] = []
            for line in [*body.splitlines(), ""]:
                if line.startswith("$ ") or (not line.strip() and command is not None):
                    if command is not None:
                        steps.append(Step("console", command, expected="\n".join(output)))
                    command, output = (line[2:], []) if line.startswith("$ ") else (None, [])
                elif command is not None:
                    output.append(line)
    return steps


def _guide_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PCCGUARD_DEBUG", "PYTHONPATH")}
    env.update({"PATH": f"{CLI_BIN}{os.pathsep}{env.get('PATH', '')}", "COLUMNS": "100", "NO_COLOR": "1"})
    return env


def assert_output_shown(expected: str, actual: str) -> None:
    """Expected lines appear in order; ``...`` alone skips lines, inside a line it skips text."""
    lines = [line.rstrip() for line in actual.splitlines()]
    cursor = 0
    for want in (line.rstrip() for line in expected.splitlines()):
        if want.strip() in ("", "..."):
            continue
        parts = want.split("...")
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in parts) + "$")
        for index in range(cursor, len(lines)):
            if pattern.match(lines[index]):
                cursor = index + 1
                break
        else:
            raise AssertionError(f"line not found (in order): {want!r}\n--- output:\n{actual}")


def test_guide_extraction_finds_the_whole_worked_example() -> None:
    steps = worked_example(GUIDE.read_text(encoding="utf-8"))
    kinds = [s.kind for s in steps]
    assert kinds.count("file") >= 7 and kinds.count("sh") >= 3 and kinds.count("console") >= 4, kinds
    assert any(s.kind == "sh" and "pass.yaml" in s.text and s.text.startswith("rm ") for s in steps)


def test_rule_authoring_worked_example_runs_outside_the_repository(tmp_path: Path) -> None:
    assert (CLI_BIN / "pccguard").is_file(), "pccguard is not installed in the test environment"
    workdir = tmp_path / "acme"
    workdir.mkdir()
    assert REPO not in workdir.resolve().parents
    env = _guide_env()
    for step in worked_example(GUIDE.read_text(encoding="utf-8")):
        if step.kind == "file":
            target = workdir / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text, encoding="utf-8")
            continue
        script = step.text
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        shown = f"$ {script}\n--- stdout:\n{proc.stdout}\n--- stderr:\n{proc.stderr}"
        if step.kind == "sh":
            assert proc.returncode == 0, shown
            continue
        named = re.search(r"\bexit (\d)\b", step.expected)
        assert proc.returncode == (int(named.group(1)) if named else 0), shown
        assert_output_shown(step.expected, proc.stdout)


def test_rules_explain_prints_a_path_that_works_from_anywhere(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(CLI_BIN / "pccguard"), "rules", "explain", "PCC-P-011"],
        cwd=tmp_path,
        env=_guide_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("  file "))
    path = Path(line.split()[1].rsplit(":", 1)[0])
    assert path.is_absolute() and (tmp_path / path).is_file(), line
    assert "package pcc.rules.pcc_p_011" in path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the examples


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
EXPECTATIONS = [
    (path, int(code), profile)
    for path in EXAMPLE_FILES
    for code, profile in EXPECT_RE.findall(path.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_states_its_exit_status(path: Path) -> None:
    assert EXPECT_RE.search(path.read_text(encoding="utf-8")), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize(
    ("path", "code", "profile"), EXPECTATIONS, ids=[f"{p.name}-{prof}" for p, _, prof in EXPECTATIONS]
)
def test_example_gives_the_exit_status_its_header_states(path: Path, code: int, profile: str) -> None:
    result = run_cli("check", path, "--profile", profile, "--format", "json")
    assert result.returncode == code, (path.name, profile, result.stderr)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_mitigations_are_ones_the_adapter_installs(path: Path) -> None:
    """A plugin-reported example lists only mitigations its engine's adapter really implements."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    runtime = data.get("runtime") or {}
    active = runtime.get("mitigations_active") or []
    if not runtime.get("plugin_active"):
        assert not active, f"{path.name}: mitigations active without a plugin"
        return
    engine = data["deployment"]["engine"]
    # Only the vLLM adapter lists its mitigations without importing its engine; extend this for another.
    assert engine == "vllm", f"{path.name}: no check of the {engine} adapter's mitigations yet"
    from pccguard.adapters.vllm import IMPLEMENTED_MITIGATIONS

    assert set(active) <= set(IMPLEMENTED_MITIGATIONS), (
        path.name,
        sorted(set(active) - set(IMPLEMENTED_MITIGATIONS)),
    )


# --------------------------------------------------------------------------- README and make report


def _report_recipe() -> list[str]:
    """The shell commands of ``make report`` after its setup step, as make would run them."""
    lines = MAKEFILE.read_text(encoding="utf-8").split("\nreport:\n", 1)[1].split("\n\n", 1)[0]
    logical = re.sub(r"\\\n", " ", lines).splitlines()
    commands = [line.strip().lstrip("@").replace("$$", "$") for line in logical if line.startswith("\t")]
    return [c for c in commands if "venv-core.sh" not in c]


def test_readme_says_what_make_report_does() -> None:
    assert (REPO / ".venv" / "bin" / "pccguard").is_file()
    outputs = []
    for command in _report_recipe():
        proc = subprocess.run(
            ["/bin/sh", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        # make stops at the first failing command: the recipe succeeds (make exits 0) on findings.
        assert proc.returncode == 0, (command, proc.stderr)
        outputs.append(proc.stdout)
    last = outputs[-1].strip().splitlines()[-1]
    assert last == "pccguard exit status 1 (0 compliant, 1 findings, 2 error)"
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert f"`{last}`" in readme
    assert "exits 1 because the example deployment" in readme
    assert "itself exits 0" in readme
