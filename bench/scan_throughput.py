"""``pccguard scan`` throughput and memory on a large file, end to end (the real command, in a child process).

Writes one file of ``--size-mib`` MiB (default 1024) -- random bytes with a
text canary and a token-id canary planted at known offsets -- then runs
``pccguard scan`` over it with text canaries only, and with text and token ids
(every shape: UTF-8, UTF-16 both ways, 32- and 64-bit ids, printed id lists),
each ``--repeats`` times. Reports MB/s of the best run and the child's peak
resident memory, and checks that every planted canary was found exactly once.

    .venv/bin/python bench/scan_throughput.py [--size-mib 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

CANARY = "pccguard-bench-canary-5be1"
IDS = (48213, 7, 30011, 912, 2)


def write_file(path: Path, size_mib: int) -> list[int]:
    """``size_mib`` MiB of random bytes with the canaries planted in the middle of some blocks."""
    planted = []
    block = 8 * 1024 * 1024
    with open(path, "wb") as handle:
        for i in range(max(1, size_mib // 8)):
            data = bytearray(os.urandom(block))
            if i % 16 == 7:
                at = block // 2
                data[at : at + len(CANARY)] = CANARY.encode()
                ids = b"".join(struct.pack("<q", t) for t in IDS)
                data[at + 1000 : at + 1000 + len(ids)] = ids
                planted.append(i * block + at)
            handle.write(data)
    return planted


def run_scan(path: Path, extra: list[str]) -> tuple[float, int, dict[str, object]]:
    """Seconds, the child's peak RSS in KiB and its JSON report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pccguard.cli",
            "scan",
            str(path),
            "--canary",
            CANARY,
            *extra,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if out.returncode not in (0, 1):
        raise SystemExit(f"pccguard scan failed: {out.stderr.strip()}")
    return seconds, max(peak, before), json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pccguard-scan-bench-") as folder:
        path = Path(folder) / "store.bin"
        planted = write_file(path, opts.size_mib)
        size = path.stat().st_size
        rows = []
        cases = {
            "text (UTF-8, UTF-16 LE/BE)": [],
            "text + token ids (int32, int64, printed)": ["--canary-ids", ",".join(map(str, IDS))],
        }
        for label, extra in cases.items():
            best, peak = float("inf"), 0
            for _ in range(opts.repeats):
                seconds, rss, report = run_scan(path, extra)
                best, peak = min(best, seconds), max(peak, rss)
                findings = report["findings"]
                assert isinstance(findings, list)
                text_hits = sorted(f["offset"] for f in findings if f["encoding"] == "utf-8")
                if text_hits != planted:
                    raise SystemExit(f"{label}: found the text canary at {text_hits}, planted at {planted}")
                if extra and len([f for f in findings if f["encoding"] == "token-ids-int64"]) != len(planted):
                    raise SystemExit(f"{label}: the token-id canary was not found once per plant")
            rows.append([label, f"{best:.2f}", f"{size / best / 1e6:.0f}", f"{peak / 1024:.0f}"])
        print_table(
            f"pccguard scan, one {size / 2**30:.2f} GiB file, best of {opts.repeats}, {len(planted)} plants found",
            ["canary shapes", "seconds", "MB/s", "peak RSS (MiB)"],
            rows,
        )


if __name__ == "__main__":
    main()
