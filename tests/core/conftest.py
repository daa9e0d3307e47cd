"""Fixtures for the core tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented text file under ``tmp_path`` and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped rulebook as an OPA bundle, as ``pccguard rules bundle`` writes it (for the OPA tests)."""
    from tests.core.support import run_cli

    out = tmp_path_factory.mktemp("opa") / "bundle"
    result = run_cli("rules", "bundle", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def engine_factory() -> Iterator[Any]:
    """Start stand-in engines (``tests/core/standin_engine.py``); each is killed after the test."""
    from tests.core.standin_engine import StandInEngine

    started: list[StandInEngine] = []

    def make(mode: str, **kwargs: Any) -> StandInEngine:
        engine = StandInEngine(mode, **kwargs).start()
        started.append(engine)
        return engine

    yield make
    for engine in started:
        engine.kill()
