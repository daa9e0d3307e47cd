"""Packaging: one import namespace, rules shipped as package data, a normal install works."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.core.support import EXAMPLES, REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("pccguard-*.whl")
    return found


def test_wheel_has_one_namespace_and_the_rulebook(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"pccguard"}
    for expected in (
        "pccguard/cli.py",
        "pccguard/adapters/__init__.py",
        "pccguard/plugins/__init__.py",
        "pccguard/enclave_runtime/__init__.py",
        "pccguard/rules/catalog.yaml",
        "pccguard/rules/lib/decision.rego",
        "pccguard/rules/profiles/pcc-strict.yaml",
    ):
        assert expected in names, expected
    assert any(n.startswith("pccguard/rules/pcc/") and n.endswith(".rego") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "pccguard = pccguard.cli:main" in text
    assert "[vllm.general_plugins]" in text and "[sglang.srt.plugins]" in text


def test_normal_install_runs_a_report(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    example = sorted(EXAMPLES.glob("*.yaml"))[0]
    code = (
        "import pccguard, sys; from pccguard.cli import main; "
        f"assert pccguard.__file__.startswith({str(target)!r}), pccguard.__file__; "
        f"sys.exit(main(['check', {str(example)!r}, '--format', 'json']))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert '"schema_version"' in proc.stdout
