"""Tenant isolation of the prefix cache and of the scheduler's queue order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def engine_without(scenario: Any, tiny_model: Path) -> dict[str, Any]:
    return scenario("engine_isolation", tiny_model, False, None)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def engine_with(scenario: Any, tiny_model: Path, plugin_config: Path) -> dict[str, Any]:
    return scenario("engine_isolation", tiny_model, True, plugin_config)  # type: ignore[no-any-return]


def test_cross_tenant_hits_without_plugin(engine_without: dict[str, Any]) -> None:
    # Positive controls: SGLang shares A's prefix with B, and with anyone copying A's salt.
    assert engine_without["b_probe"] == 7
    assert engine_without["c_copied_salt"] == 7


def test_same_tenant_still_hits_with_plugin(engine_with: dict[str, Any]) -> None:
    assert engine_with["a_repeat"] == 7
    assert engine_with["a_salted_repeat"] == 7


def test_other_tenant_gets_no_cached_tokens(engine_with: dict[str, Any]) -> None:
    assert engine_with["b_probe"] == 0


def test_copied_client_salt_is_overridden(engine_with: dict[str, Any]) -> None:
    assert engine_with["c_copied_salt"] == 0


def test_flush_cache_empties_the_tree(engine_with: dict[str, Any]) -> None:
    assert engine_with["flushed"] is True
    assert engine_with["a_after_flush"] == 0


def test_lpm_order_reveals_other_tenant_without_plugin(scenario: Any, tiny_model: Path) -> None:
    result = scenario("lpm_order", tiny_model, False, None)
    assert result["policy"] == "lpm"
    # The correct guess of A's prompt jumps the queue: the order is an oracle.
    assert result["order"] == ["B2_correct", "B1_partial", "B3_none"]
    assert result["prefix_lens"]["B2_correct"] == 5


def test_lpm_order_independent_of_other_tenant_with_plugin(
    scenario: Any, tiny_model: Path, plugin_config: Path
) -> None:
    result = scenario("lpm_order", tiny_model, True, plugin_config)
    assert result["policy"] == "fcfs"
    assert result["order"] == ["B3_none", "B1_partial", "B2_correct"], "arrival order"
    assert set(result["prefix_lens"].values()) == {0}, "salts confine matches to the tenant"
