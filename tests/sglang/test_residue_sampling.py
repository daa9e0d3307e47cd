"""Residue sampling while serving on SGLang's real Engine: planted residue in free KV stops admission.

Each run is a fresh process (``scenarios/residue.py``). The plant writes data
into every free page of every K/V buffer after the scheduler starts, as a
free path that skipped the scrub would leave it, and reads it back with the
sampler's reader (the positive control). With the plugin the scheduler's
sampler finds it while idle and the next request is refused (503); with
``audit`` it is reported and the request served; without a plant the same
engine serves (nothing is found); without the plugin nobody looks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pccguard.enforcement.residue import REFUSAL
from tests.sglang.support import run_scenario

BASE = (
    "profile: multi-tenant-baseline\n"
    "tenancy:\n  mode: multi\n  identified_by: header\n  tenant_header: x-pccguard-tenant\n"
    "mitigations:\n  prefix_cache_ttl_seconds: 300\n  residue_sample_interval_seconds: 0.25\n"
)


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "pccguard.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return path


def _run(tiny_model: Path, plugin: bool, config: Path | None, plant: bool) -> dict[str, Any]:
    return run_scenario("residue_sampling", tiny_model, plugin, config, "plant" if plant else "clean")


def test_planted_residue_stops_admission(tiny_model: Path, tmp_path: Path) -> None:
    result = _run(tiny_model, True, _config(tmp_path), plant=True)
    assert result["planted"]["read_back"] == 8, (
        result
    )  # positive control: the data is there, the reader sees it
    assert result["served"] is False, result
    assert result["error"] == f"HTTPException: 503: {REFUSAL}"  # SGLang's Engine raises the 503 abort
    (event,) = result["residue_events"]  # one event: once admission stopped there is nothing more to sample
    assert (event["mitigation"], event["unit"], event["reason"]) == (
        "scrub_freed_kv",
        "blocks",
        "admission_stopped",
    )
    assert event["count"] == 8  # every page of the sample held data
    # The scheduler's counters, as pccguard's metrics route reads them (served kinds only, no traffic counts).
    (counters,) = result["counters"]
    assert counters["residue_found/scrub_freed_kv"] == 8
    assert not any(name.startswith(("kv_scrubbed", "cache_salt_applied")) for name in counters)


def test_clean_free_pages_are_served(tiny_model: Path, tmp_path: Path) -> None:
    result = _run(tiny_model, True, _config(tmp_path), plant=False)
    assert result["served"] is True, result
    assert result["residue_events"] == []


def test_audit_only_reports_and_serves(tiny_model: Path, tmp_path: Path) -> None:
    result = _run(tiny_model, True, _config(tmp_path, "  residue_on_found: audit\n"), plant=True)
    assert result["planted"]["read_back"] == 8
    assert result["served"] is True, result
    assert result["residue_events"] and result["residue_events"][0]["reason"] == "audited"


@pytest.mark.parametrize("plant", [True])
def test_without_the_plugin_residue_goes_unnoticed(tiny_model: Path, plant: bool) -> None:
    result = _run(tiny_model, False, None, plant=plant)
    assert result["planted"]["read_back"] == 8  # the residue is there
    assert result["served"] is True, result  # and nothing refuses
    assert result["residue_events"] == []
    assert result["counters"] == [None]  # no scheduler hook without the plugin
