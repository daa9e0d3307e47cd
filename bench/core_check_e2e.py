"""``pccguard check examples/<one>.yaml`` end to end: process start to exit.

Target: ≤ 1.5 s. Runs the real console script N times and prints the distribution.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table

REPO = Path(__file__).resolve().parents[1]
RUNS = 15


def main() -> None:
    exe = shutil.which("pccguard", path=str(Path(sys.executable).parent)) or "pccguard"
    rows = []
    for fmt in ("table", "json", "sarif"):
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            proc = subprocess.run(
                [exe, "check", "examples/vllm-multitenant-default.yaml", "--format", fmt],
                cwd=REPO,
                capture_output=True,
                check=False,
            )
            times.append(time.perf_counter() - start)
            assert proc.returncode in (0, 1), proc.stderr
        rows.append((fmt, f"{statistics.median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}"))
    print_table(
        f"pccguard check end to end, {RUNS} runs each", ["format", "median s", "min s", "max s"], rows
    )


if __name__ == "__main__":
    main()
