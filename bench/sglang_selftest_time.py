"""Start-time self-test cost on SGLang's real Engine: each scheduler check against the engine's own start.

Starts SGLang 0.5.23's real ``Engine`` on the CPU (tiny generated LLaMA, dummy
weights; the multi-tenant baseline with a prefix-cache TTL: scrub, salts, TTL,
cache-agnostic scheduling and server-side priority installed) several times,
each in a process of its own, and prints the scheduler process's start, the
self-tests' time, the budget (2 s or 2% of the start, whichever is larger)
and each check's time, as the scheduler reported them in its ready handshake.

    .venv-sglang/bin/python bench/sglang_selftest_time.py [--starts 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE.parent / "tests" / "sglang" / "scenarios"
sys.path.insert(0, str(SCENARIOS))
sys.path.insert(0, str(HERE))

from _common import write_tiny_model  # noqa: E402
from _table import print_table, selftest_rows  # noqa: E402

CONFIG = (
    "profile: multi-tenant-baseline\n"
    "tenancy:\n  mode: multi\n  identified_by: header\n  tenant_header: x-pccguard-tenant\n"
    "mitigations:\n  prefix_cache_ttl_seconds: 300\n"
)


def one_start(model: Path, config: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PCCGUARD_", "SGLANG_PLUGINS"))}
    env.update(SGLANG_PLUGINS="pccguard", PCCGUARD_CONFIG=str(config), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS / "selftest.py"), str(model), "plugin", "engine"],
        cwd=SCENARIOS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the engine did not start: {proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pccguard-bench-"))
    model = write_tiny_model(tmp / "model")
    config = tmp / "pccguard.yaml"
    config.write_text(CONFIG, encoding="utf-8")

    walls: list[float] = []
    starts: list[float] = []
    inits: list[float] = []
    tests: list[float] = []
    per: dict[str, list[float]] = {}
    for _ in range(args.starts):
        report = one_start(model, config)
        selftests = report["selftests"]
        walls.append(report["engine_wall_seconds"])
        starts.append(selftests["engine_start_seconds"])
        inits.append(selftests["scheduler_init_seconds"])
        tests.append(selftests["seconds"])
        for record in selftests["records"]:
            per.setdefault(record["mitigation"], []).append(record["seconds"])

    start_s, test_s = statistics.median(starts), statistics.median(tests)
    rows = [
        ["Engine(...) wall time in the caller", f"{statistics.median(walls):.2f} s", ""],
        ["scheduler process start to self-tests", f"{start_s:.2f} s", "the start the budget is measured on"],
        ["  of which Scheduler.__init__", f"{statistics.median(inits):.2f} s", ""],
        *selftest_rows(start_s, test_s, per),
    ]
    print_table(f"SGLang start-time self-tests, median of {args.starts} starts", ["", "time", "note"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
