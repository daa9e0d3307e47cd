"""Freed KV slots hold no earlier tenant's K/V with the plugin; they do without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CASES = ["release", "deferred", "evict_radix", "evict_unified", "paged", "flush"]


@pytest.fixture(scope="module")
def without(scenario: Any, tiny_model: Path) -> dict[str, Any]:
    return scenario("residue", tiny_model, False, None)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def with_plugin(scenario: Any, tiny_model: Path, plugin_config: Path) -> dict[str, Any]:
    return scenario("residue", tiny_model, True, plugin_config)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CASES)
def test_canary_present_before_free(case: str, without: dict[str, Any], with_plugin: dict[str, Any]) -> None:
    # Positive control: the canary really is in the slots before they are freed.
    assert without[case]["before"] > 0
    assert with_plugin[case]["before"] == without[case]["before"]


@pytest.mark.parametrize("case", CASES)
def test_residue_survives_without_plugin(case: str, without: dict[str, Any]) -> None:
    assert without[case]["after"] == without[case]["before"]
    assert without[case]["fresh"] > 0, "the next allocation hands out the earlier tenant's K/V"


@pytest.mark.parametrize("case", CASES)
def test_freed_slots_scrubbed_with_plugin(case: str, with_plugin: dict[str, Any]) -> None:
    assert with_plugin[case]["after"] == 0
    assert with_plugin[case]["fresh"] == 0


def test_scrubbing_is_audited(with_plugin: dict[str, Any]) -> None:
    counters = with_plugin["counters"]
    assert counters.get("kv_scrubbed/scrub_freed_kv", 0) > 0
    assert counters.get("mitigation_installed/scrub_freed_kv") == 1


def test_ttl_evicts_and_scrubs_expired_nodes(without: dict[str, Any], with_plugin: dict[str, Any]) -> None:
    # Without the plugin nothing expires: the old prompt and its KV stay in the tree.
    assert without["ttl"]["tree_tokens"] == 8 and without["ttl"]["old_canary"] == 5
    ttl = with_plugin["ttl"]
    assert ttl["expired_tokens"] == 5
    assert ttl["old_canary"] == 0, "expired KV must be scrubbed"
    assert ttl["tree_tokens"] == 3, "only the recent node (its token ids) remains"
    assert ttl["recent_canary"] == 3, "unexpired entries are untouched"
