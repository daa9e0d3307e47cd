"""The type check covers every installed package under its installed name, and reports real paths.

``scripts/typecheck.py`` links the folders ``setup.py`` maps into the ``pccguard`` namespace
under ``build/typecheck/pccguard`` so mypy resolves ``pccguard.adapters.*``; these tests run it
on a small project laid out like this one (a core, an adapter folder mapped in at install)
with planted errors, and check that the repository's mypy configuration names every mapped
folder.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.core.support import REPO

SCRIPT = REPO / "scripts" / "typecheck.py"

#: The adapter returns ``str``; the core claims ``int``: only visible if the import resolves.
CORE = "from pccguard.adapters.engine import width\n\n\ndef use() -> int:\n    return width()\n"
ADAPTER = 'def width() -> str:\n    return "w"\n\n\ncount: int = "planted"\n'


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("typecheck_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A core ``pccguard/`` and an ``adapters/`` folder installed as ``pccguard.adapters``."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "typecheck.py")
    (tmp_path / "setup.py").write_text('ROOTS = {"pccguard": "pccguard", "pccguard.adapters": "adapters"}\n')
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [tool.mypy]
            strict = true
            mypy_path = "build/typecheck"
            files = ["pccguard", "build/typecheck/pccguard/adapters"]
            ignore_missing_imports = true

            [[tool.mypy.overrides]]
            module = ["pccguard", "pccguard.*"]
            ignore_missing_imports = false
            """
        )
    )
    for folder, name, body in (("pccguard", "core.py", CORE), ("adapters", "engine.py", ADAPTER)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
        (tmp_path / folder / name).write_text(body)
    return tmp_path


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_mapped_folder_is_checked_under_its_installed_name_and_reported_at_its_real_path(
    project: Path,
) -> None:
    done = _run(project, "scripts/typecheck.py")
    assert done.returncode == 1, done.stdout + done.stderr
    # The planted error in the adapter, at the file's real path.
    assert 'adapters/engine.py:5: error: Incompatible types in assignment (expression has type "str"' in (
        done.stdout
    )
    # The core's import of pccguard.adapters resolved to the adapter: its return type is seen.
    assert 'pccguard/core.py:5: error: Incompatible return value type (got "str", expected "int")' in (
        done.stdout
    )
    assert "build/typecheck" not in done.stdout + done.stderr
    assert "Found 2 errors in 2 files (checked 4 source files)" in done.stdout

    # A single real path given on the command line is checked under its installed name too.
    one = _run(project, "scripts/typecheck.py", "adapters/engine.py")
    assert one.returncode == 1, one.stdout + one.stderr
    assert "adapters/engine.py:5: error" in one.stdout and "build/typecheck" not in one.stdout
    assert "checked 1 source file" in one.stdout


def test_without_the_link_tree_the_cross_namespace_error_is_missed(project: Path) -> None:
    """Positive control: mypy on the source folders as they lie misses what the tree exposes."""
    done = _run(
        project,
        "-m",
        "mypy",
        "--config-file",
        "/dev/null",
        "--strict",
        "--ignore-missing-imports",
        "pccguard",
        "adapters",
    )
    assert "adapters/engine.py:5: error" in done.stdout, done.stdout + done.stderr
    # pccguard.adapters does not resolve: the adapter's return type is an unchecked Any.
    assert "Incompatible return value type" not in done.stdout
    assert 'pccguard/core.py:5: error: Returning Any from function declared to return "int"' in done.stdout


def test_repository_configuration_checks_every_installed_package() -> None:
    script = _load_script()
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    folders = script.mapped_folders(REPO)
    assert set(folders.values()) == {"adapters", "plugins", "enclave_runtime", "rules"}
    assert config["mypy_path"] == script.TREE.as_posix()
    assert sorted(config["files"]) == sorted(["pccguard", *folders])
    assert config["strict"] is True
