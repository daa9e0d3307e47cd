"""vLLM's ``LLM`` with its engine core in a process started by ``spawn``: the start path of a GPU user.

vLLM forces ``spawn`` once CUDA is initialised; the engine-core process then
loads the plugin from inside ``EngineCore.__init__``. Each case runs
``scenarios/engine_process.py`` in a fresh process: the self-tests ran in the
engine-core process before it reported ready, residue planted after the start
is found by the sampler and later requests finish refused, and a zeroer that
skips a KV tensor refuses the start before ``LLM(...)`` returns. The control
(plugin disabled) serves every request over the same planted residue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("scenarios") / "engine_process.py"
TIMEOUT_S = 240
SAMPLING = (
    "profile: multi-tenant-baseline\n"
    "mitigations:\n  residue_sample_interval_seconds: 0.1\n  residue_sample_blocks: 64\n"
)


def _run(model: Path, tmp_path: Path, config: str, mode: str) -> tuple[dict[str, Any], str]:
    path = tmp_path / "pccguard.yaml"
    path.write_text(config, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(SCENARIO), str(model), str(path), mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise AssertionError(
            f"scenario {mode} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return json.loads(lines[-1]), done.stdout + done.stderr  # vLLM logs to stdout


def test_the_spawned_engine_core_proves_itself_and_stops_admission_on_residue(
    tiny_model: Path, tmp_path: Path
) -> None:
    report, log = _run(tiny_model, tmp_path, SAMPLING, "residue")
    assert report["started"]
    proven = {r["mitigation"]: r for r in report["selftests"]}
    assert {"scrub_freed_kv", "tenant_cache_salt", "prefix_cache_ttl"} <= set(proven)
    assert all(r["passed"] and r["blocks"] > 0 for r in proven.values())
    assert report["planted"] == [39]
    # The first request after the plant runs the step that samples; the next ones are refused.
    assert report["finished"] == ["length", "error", "error"]
    assert "free KV blocks held data; admission stopped" in log
    # What pccguard's metrics route reads from the engine core, through vLLM's utility call.
    counters = report["counters"]
    assert counters["residue_found/scrub_freed_kv"] > 0
    assert counters["selftest_passed/scrub_freed_kv"] == 1


def test_without_the_plugin_the_planted_residue_goes_unnoticed(tiny_model: Path, tmp_path: Path) -> None:
    report, log = _run(tiny_model, tmp_path, "enabled: false\n", "residue")
    assert report["started"] and report["selftests"] == [] and report["planted"] == [39]
    assert report["finished"] == ["length", "length", "length"]
    assert "held data" not in log
    # The utility exists wherever the plugin is loaded; disabled, it has found and proven nothing.
    assert not any(name.startswith(("residue_found", "selftest_passed")) for name in report["counters"])


def test_a_broken_zeroer_refuses_the_spawned_start_before_it_reports_ready(
    tiny_model: Path, tmp_path: Path
) -> None:
    report, log = _run(tiny_model, tmp_path, SAMPLING, "skip_layer")
    assert report["started"] is False, report
    assert report["error"].startswith("RuntimeError: Engine core initialization failed")
    refusals = [line for line in log.splitlines() if "pccguard refuses to start vllm: self-test of" in line]
    assert refusals, log[-3000:]
    assert f"canary still in 2 of 2 freed blocks of KV tensor layers.{1}.attn on rank 0" in refusals[0]


@pytest.mark.parametrize("mode", ["residue"])
def test_the_scenario_rejects_a_malformed_config(tiny_model: Path, tmp_path: Path, mode: str) -> None:
    """A control for the harness: a bad setting refuses the start, it is not silently dropped."""
    config = SAMPLING.replace("0.1", "0")
    report, _ = _run(tiny_model, tmp_path, config, mode)
    assert report["started"] is False
    assert "residue_sample_interval_seconds: input should be greater than 0" in report["error"]
