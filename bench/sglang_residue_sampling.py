"""Cost of residue sampling in SGLang's scheduler loop: sampling on vs off, paired, and one sample alone.

Two arms of ``bench/sglang_radix_overhead.py`` -- SGLang 0.5.23's real
``RadixCache`` over its real ``MHATokenToKVPool`` and ``TokenToKVPoolAllocator``
on the CPU, pccguard's salts and TTL tick in both -- differ in one thing: the
sampling arm also runs the hook SGLang's scheduler runs before it picks each
batch (``get_next_batch_to_run``), with the interval given, once per
``--batch`` requests (32 by default: a scheduler iteration admits a batch; 1
runs it after every request). No model runs here, so the hook's share is
overstated against a real scheduler iteration. The arms play the same workload
in lockstep, the order alternating per request; one round is one pair.

A control row runs two identical arms (no hook in either): the spread it
shows is the bench's own. Also printed: what one sample costs on its own -- listing the allocator's free
pages and reading 8 of them in every K and V buffer -- on the bench's pool and
on one of a million slots, since listing the free pages grows with the pool.

    .venv-sglang/bin/python bench/sglang_residue_sampling.py [--requests N] [--rounds K]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import paired_ratio, print_table, target_verdict
from sglang_radix_overhead import Arm, allocator, arms, install, workload

#: The default interval and one a hundred times more frequent (a stress setting).
INTERVALS = (5.0, 0.05)


class _Loop:
    """Stands in for the ``Scheduler`` the hook is given: the attribute it reads, the allocator."""

    def __init__(self, allocator: Any) -> None:
        self.token_to_kv_pool_allocator = allocator


def _sampler(loop: _Loop, interval: float) -> Any:
    """The sampler the hook will find for ``loop`` (the one the plugin builds, at ``interval``)."""
    from pccguard.adapters.sglang.runtime import residue
    from pccguard.adapters.sglang.runtime.state import STATE
    from pccguard.enforcement.residue import ResidueSampler

    if residue.sampler_for(loop) is None:
        raise SystemExit("the plugin builds no residue sampler here: nothing to measure")
    sampler = residue._SAMPLERS[id(loop)] = ResidueSampler(STATE.audit, interval_s=interval)
    return sampler


def _every(arm: Arm, batch: int, hook: Any) -> None:
    """Run ``hook`` after every ``batch``-th TTL tick of ``arm`` (``None``: the same counting, nothing run).

    Both arms carry the counting wrapper, so the pair differs by the hook alone.
    """
    tick = arm.tick
    seen = [0]

    def tick_and_count(tree: Any) -> None:
        tick(tree)
        seen[0] += 1
        if seen[0] % batch == 0 and hook is not None:
            hook()

    arm.tick = tick_and_count


def _sampling(arm: Arm, interval: float, batch: int) -> Any:
    """``arm`` with the scheduler's pre-batch hook every ``batch`` requests; the sampler it runs."""
    from pccguard.adapters.sglang.runtime import residue

    loop = _Loop(arm.alloc)
    sampler = _sampler(loop, interval)
    _every(arm, batch, lambda: residue._before_step(loop))
    return sampler


def _one_sample(slots: int, n: int = 200) -> float:
    """Seconds per sample on a fresh pool of ``slots`` (all free): list the free pages, read 8."""
    from pccguard.adapters.sglang.runtime import residue

    alloc = allocator(slots)
    sampler = _sampler(_Loop(alloc), 5.0)
    start = time.thread_time()
    for _ in range(n):
        found = sampler.sample(lambda: residue.free_pages(alloc), lambda p: residue.dirty_pages(alloc, p))
        if found.dirty:
            raise SystemExit("residue in a fresh pool: the measurement is void")
    return (time.thread_time() - start) / n


def _not_due(n: int = 200_000) -> float:
    """Seconds per call of the pre-batch hook between samples (the sampler is not due)."""
    from pccguard.adapters.sglang.runtime import residue

    arm = arms(install_once())[1]
    loop = _Loop(arm.alloc)
    _sampler(loop, 3600.0)
    hook = residue._before_step
    start = time.thread_time()
    for _ in range(n):
        hook(loop)
    return (time.thread_time() - start) / n


_INSTALLED: list[Any] = []


def install_once() -> Any:
    if not _INSTALLED:
        _INSTALLED.append(install())
    return _INSTALLED[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30, help="paired rounds (default 30)")
    parser.add_argument("--batch", type=int, default=32, help="requests per scheduler iteration (default 32)")
    opts = parser.parse_args()
    enforcement = install_once()
    rows = []
    for interval in (None, *INTERVALS):
        pairs: list[tuple[float, float]] = []
        taken = 0
        for r in range(opts.rounds):
            # Which arm's pool is allocated first alternates too: placement alone moved an A/A pair by 3%.
            first, second = arms(enforcement)[1], arms(enforcement)[1]
            off, on = (first, second) if r % 2 == 0 else (second, first)
            sampler = None if interval is None else _sampling(on, interval, opts.batch)
            if sampler is None:
                _every(on, opts.batch, None)
            _every(off, opts.batch, None)
            gc.collect()
            for i, (tenant, tokens) in enumerate(workload(opts.requests, seed=r)):
                for arm in (off, on) if (i + r) % 2 == 0 else (on, off):
                    arm.step(tenant, tokens)
            if sampler is not None:
                if not sampler.admitting:
                    raise SystemExit("the sampler found residue: the measurement is void")
                taken += sampler.counters()["residue_samples"]
            pairs.append((on.timed, off.timed))
        ratio, low, high = paired_ratio(pairs)
        rows.append(
            [
                "control: no hook in either" if interval is None else f"{interval:g} s",
                f"{statistics.median(p[1] for p in pairs):.4f}",
                f"{statistics.median(p[0] for p in pairs):.4f}",
                f"{ratio:.4f} [{low:.4f}, {high:.4f}]",
                str(taken),
                target_verdict(high, len(pairs), bound=1.01),
            ]
        )
    print_table(
        f"SGLang 0.5.23 RadixCache + pre-batch hook every {opts.batch} requests, {opts.requests} requests "
        f"x {opts.rounds} paired rounds per interval; thread CPU time, median round",
        ["interval", "off (s)", "on (s)", "ratio [95% CI]", "samples", "<= 1.01"],
        rows,
    )
    print_table(
        "one sample alone: list the free pages, read 8 in every K and V buffer (2 layers)",
        ["pool (slots)", "us/sample", "cost / 5 s interval"],
        [
            [f"{s:,}", f"{c * 1e6:.0f}", f"{c / 5.0:.4%}"]
            for s in (Arm.SIZE, 1 << 20)
            for c in [_one_sample(s)]
        ],
    )
    print(f"the hook between samples (not due): {_not_due() * 1e6:.2f} us per scheduler iteration")


if __name__ == "__main__":
    main()
