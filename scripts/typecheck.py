"""Type-check every installed package under the module names it is installed with.

``setup.py`` maps ``adapters/``, ``plugins/``, ``enclave_runtime/`` and ``rules/`` into the
``pccguard`` namespace at install time (``pccguard.adapters`` …). In the source tree those
folders sit beside ``pccguard/``, not under it, so mypy cannot resolve ``pccguard.adapters.*``
from the tree, and checking ``adapters/`` directly would name its modules ``adapters.*``.

This lays out ``build/typecheck/pccguard/``: a link to ``pccguard/__init__.py`` and one link
per mapped folder (``adapters -> ../../../adapters`` …). mypy searches every directory on
its path for a submodule, so with ``mypy_path = "build/typecheck"`` it finds the core at its
real path and ``pccguard.adapters.*`` through the links; ``[tool.mypy] files`` in
``pyproject.toml`` lists the core and the linked folders, so a plain ``mypy`` run (once the
tree exists) checks everything. This script builds the tree, runs mypy, and turns the linked
paths in mypy's report back into the real ones (``adapters/vllm/routes.py``), so a report
points at the file to edit.

Usage: ``.venv/bin/python scripts/typecheck.py [mypy arguments or FILES]``; real paths of
files in a mapped folder are accepted and checked under their installed names.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TREE = Path("build") / "typecheck"
CORE = "pccguard"


def mapped_folders(repo: Path = REPO) -> dict[str, str]:
    """The folders ``setup.py`` maps under the core namespace, by the tree path they take there.

    Read from ``setup.py``'s ``ROOTS`` literal so the install mapping stays the one source.
    """
    tree = ast.parse((repo / "setup.py").read_text(), "setup.py")
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ROOTS" for t in node.targets
        ):
            roots: dict[str, str] = ast.literal_eval(node.value)
            break
    else:
        raise SystemExit("typecheck: setup.py has no ROOTS mapping")
    return {
        (TREE / namespace.replace(".", "/")).as_posix(): folder
        for namespace, folder in roots.items()
        if namespace != CORE
    }


def _link(path: Path, target: Path) -> None:
    """Point ``path`` at ``target`` (relative), replacing a stale link."""
    relative = os.path.relpath(target, path.parent)
    if path.is_symlink() and os.readlink(path) == relative:
        return
    if path.is_symlink() or path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(relative)


def lay_out(repo: Path = REPO) -> dict[str, str]:
    """Build the link tree under ``repo``; return the tree path → real folder mapping."""
    folders = mapped_folders(repo)
    _link(repo / TREE / CORE / "__init__.py", repo / CORE / "__init__.py")
    for linked, folder in folders.items():
        _link(repo / linked, repo / folder)
    return folders


def to_tree(arg: str, folders: dict[str, str], repo: Path = REPO) -> str:
    """A real path inside a mapped folder becomes its path in the tree; anything else is kept."""
    path = Path(arg)
    if arg.startswith("-") or not path.exists():
        return arg
    try:
        relative = path.resolve().relative_to(repo).as_posix()
    except ValueError:
        return arg
    for linked, folder in folders.items():
        if relative == folder or relative.startswith(folder + "/"):
            return linked + relative[len(folder) :]
    return relative


def to_real(report: str, folders: dict[str, str]) -> str:
    """Turn every tree path in mypy's report back into the real path."""
    for linked, folder in sorted(folders.items(), key=lambda item: -len(item[0])):
        report = report.replace(linked + "/", folder + "/")
    return report


def main(argv: list[str]) -> int:
    folders = lay_out()
    args = [to_tree(arg, folders) for arg in argv]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    sys.stdout.write(to_real(done.stdout, folders))
    sys.stderr.write(to_real(done.stderr, folders))
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
