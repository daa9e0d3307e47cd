"""Fixtures for the SGLang adapter tests (real SGLang 0.5.23 on the CPU).

The root conftest leaves this folder out where SGLang is not installed;
``scripts/venv-sglang.sh`` builds the environment that has it.
Scenarios that patch SGLang run in their own processes, so a run "with the
plugin" and its positive control "without" never share patched code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sglang.scenarios._common import write_tiny_model
from tests.sglang.support import run_scenario


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def plugin_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multi-tenant baseline: the strict profile refuses any engine whose TEE facts are unknown."""
    path = tmp_path_factory.mktemp("pccguard") / "config.yaml"
    path.write_text(
        "profile: multi-tenant-baseline\n"
        "tenancy:\n  mode: multi\n  identified_by: header\n  tenant_header: x-pccguard-tenant\n"
        "mitigations:\n  prefix_cache_ttl_seconds: 300\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def scenario() -> Iterator[Any]:
    cache: dict[tuple[str, bool], dict[str, Any]] = {}

    def run(name: str, model: Path, plugin: bool, config: Path | None) -> dict[str, Any]:
        key = (name, plugin)
        if key not in cache:
            cache[key] = run_scenario(name, model, plugin, config)
        return cache[key]

    yield run
