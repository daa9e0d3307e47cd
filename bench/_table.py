"""Print benchmark results as a rich table, plus the machine they came from."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
            mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, caption=machine())
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)


def paired_ratio(
    pairs: Sequence[tuple[float, float]], resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Median of the per-round ratios ``treated / baseline`` with a bootstrap 95% interval.

    Each pair is one round that ran both arms on the same work, interleaved and
    in alternating order, so the machine's drift cancels inside a pair; the
    interval says how far the median could move on another run.
    """
    import random
    import statistics

    if len(pairs) < 2 or any(base <= 0 for _, base in pairs):
        raise ValueError("need at least two rounds with a positive baseline")
    ratios = [treated / base for treated, base in pairs]
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    low = medians[int(0.025 * resamples)]
    high = medians[min(resamples - 1, int(0.975 * resamples))]
    return statistics.median(ratios), low, high


#: Fewer paired rounds than this give an interval too coarse to judge a target by.
MIN_ROUNDS = 30


def target_verdict(high: float, rounds: int, bound: float = 1.03) -> str:
    """Whether the interval's upper bound meets ``bound``: judged only over at least ``MIN_ROUNDS`` rounds."""
    if rounds < MIN_ROUNDS:
        return f"not judged: {rounds} rounds, at least {MIN_ROUNDS} needed"
    return "met" if high <= bound else "not met"


def selftest_rows(start_s: float, test_s: float, per: dict[str, list[float]]) -> list[list[str]]:
    """The self-test rows both engines' start-time benches print: total, budget verdict, each check."""
    import statistics

    budget = max(2.0, 0.02 * start_s)
    rows = [
        ["all self-tests", f"{test_s * 1000:.1f} ms", f"{test_s / start_s:.2%} of start"],
        ["budget: max(2 s, 2% of start)", f"{budget:.2f} s", "met" if test_s <= budget else "NOT met"],
    ]
    return rows + [[f"  {m}", f"{statistics.median(s) * 1000:.1f} ms", ""] for m, s in sorted(per.items())]
