"""The environment scripts refuse to start a build on a disk that cannot hold it.

A full disk otherwise surfaces halfway through pip as an OSError in an install log,
with the environment half built. ``scripts/need-disk.sh`` is run here as the real
script against the real filesystem; the thresholds are made impossible (or trivial)
relative to the free space measured in the same test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.core.support import REPO

NEED_DISK = REPO / "scripts" / "need-disk.sh"
BUILD_SCRIPTS = ["venv-core.sh", "venv-vllm.sh", "venv-sglang.sh", "venv-enclave.sh"]


def _need_disk(*args: str, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(NEED_DISK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmpdir)},
    )


def test_enough_space_passes_silently(tmp_path: Path):
    result = _need_disk("venv-x", "0", str(tmp_path), tmpdir=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_too_little_space_is_one_line_naming_the_directory_and_sizes(tmp_path: Path):
    free_gib = shutil.disk_usage(tmp_path).free / 2**30
    impossible = int(free_gib) + 1000
    target = tmp_path / "not-yet" / ".venv-x"  # does not exist: its nearest parent is measured
    result = _need_disk("venv-x", str(impossible), str(target), tmpdir=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    match = re.fullmatch(
        rf"venv-x: needs about {impossible} GiB free under (\S+) to build, ([0-9.]+) GiB available",
        lines[0],
    )
    assert match, lines[0]
    assert match.group(1) == str(tmp_path)
    assert abs(float(match.group(2)) - free_gib) < 1.0
    assert not target.parent.exists()  # the check creates nothing


@pytest.mark.parametrize(
    "args",
    [(), ("venv-x", "5"), ("venv-x", "five", "."), ("venv-x", "-1", "."), ("a", "1", ".", "extra")],
)
def test_bad_arguments_are_a_usage_error(args: tuple[str, ...], tmp_path: Path):
    result = _need_disk(*args, tmpdir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "usage: need-disk.sh NAME GIB DIR"


@pytest.mark.parametrize("script", BUILD_SCRIPTS)
def test_every_environment_checks_the_disk_before_it_builds(script: str):
    lines = (REPO / "scripts" / script).read_text().splitlines()
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    check = next(i for i, line in enumerate(code) if "need-disk.sh" in line)
    first_build = next(i for i, line in enumerate(code) if " -m venv " in line or "pip install" in line)
    assert check < first_build, f"{script}: the disk check must come before the first build step"
