"""Imports run one way: each stage of the core imports only the stages below it.

The order, from the bottom: ``errors`` → ``files`` → ``facts`` → ``policy`` →
``evaluation`` → (``authoring`` | ``enforcement`` | ``reports``) → (``probe`` | ``scan`` | ``transparency``) →
``cli``. The three stages on one level are siblings and never import each
other. Outside the core: ``enclave_runtime`` sits above enforcement, the
engine adapters above it, and the plugins are thin entry points above the
adapters. Every import counts, the lazy ones inside functions too; only a
module's ``if __name__ == "__main__":`` block is exempt (a command-line entry
may call the CLI).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"pccguard": "pccguard", "adapters": "pccguard.adapters", "plugins": "pccguard.plugins"}
FOLDERS["enclave_runtime"] = "pccguard.enclave_runtime"

#: Stage → level. Equal levels are siblings: neither may import the other.
LEVELS = {
    "errors": 0,
    "files": 1,
    "facts": 2,
    "policy": 3,
    "evaluation": 4,
    "authoring": 5,
    "enforcement": 5,
    "reports": 5,
    "probe": 6,
    "scan": 6,
    "transparency": 6,
    "enclave_runtime": 6,
    "adapters": 7,
    "cli": 8,
    "plugins": 9,
    "rules": 0,
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, namespace in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([namespace, *parts])] = path
    return found


MODULES = _modules()


def stage_of(module: str) -> str:
    """The stage a dotted ``pccguard`` module belongs to (``pccguard`` itself is the package's version)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "errors"  # ``from pccguard import __version__``: the package root holds nothing else
    return parts[1]


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip: set[int] = set()
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        ):
            skip.update(id(n) for n in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("pccguard")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name == "pccguard":  # ``from pccguard import x``: x is a module, or the package's version
                out += [
                    (
                        node.lineno,
                        f"pccguard.{alias.name}" if f"pccguard.{alias.name}" in MODULES else "pccguard",
                    )
                    for alias in node.names
                ]
            elif name.startswith("pccguard"):
                out.append((node.lineno, name))
    return out


def _violation(importer: str, imported: str) -> str | None:
    src, dst = stage_of(importer), stage_of(imported)
    if imported == "pccguard" or src == dst:
        if src == "adapters" and importer.split(".")[2:3] != imported.split(".")[2:3]:
            return "one engine's adapter imports the other's"
        return None
    if dst not in LEVELS:
        return f"unknown stage {dst!r}"
    if LEVELS[dst] >= LEVELS[src]:
        return f"{src} (level {LEVELS[src]}) may not import {dst} (level {LEVELS[dst]})"
    if src == "plugins" and dst not in {"adapters", "errors"}:
        return "a plugin is a thin entry point: it imports only its adapter and errors"
    return None


def test_every_import_runs_down_the_stages() -> None:
    problems = []
    for module, path in MODULES.items():
        if stage_of(module) not in LEVELS:
            problems.append(f"{path.relative_to(ROOT)}: module outside every stage")
            continue
        for line, imported in _imports(path, module):
            why = _violation(module, imported)
            if why:
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {imported}: {why}")
    assert problems == []


def test_core_has_no_flat_modules_besides_the_entry_points() -> None:
    flat = sorted(p.name for p in (ROOT / "pccguard").glob("*.py"))
    assert flat == ["__init__.py", "cli.py", "errors.py"]


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("pccguard.facts.model", "pccguard.policy.rulebook"),
        ("pccguard.enforcement.decide", "pccguard.reports.table"),
        ("pccguard.adapters.vllm.facts", "pccguard.plugins.vllm"),
        ("pccguard.adapters.sglang.facts", "pccguard.adapters.vllm.parse"),
        ("pccguard.plugins.vllm", "pccguard.enforcement.startup"),
        ("pccguard.policy.rulebook", "pccguard.authoring.lint"),
    ],
)
def test_the_checker_catches_an_upward_import(importer: str, imported: str) -> None:
    """Positive control: each kind of wrong-way import is reported."""
    assert _violation(importer, imported) is not None


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("from ..policy import rulebook\nfrom . import model\n", encoding="utf-8")
    assert _imports(source, "pccguard.facts.x") == [(1, "pccguard.policy"), (2, "pccguard.facts")]
