"""Cost of residue sampling while serving on vLLM's real EngineCore: sampling on vs off, paired.

Two real ``EngineCore`` objects with the plugin (scrub, salts, TTL), the same
configuration and the same executor -- the tests' CPU executor, whose worker
holds real paged KV tensors (2,048 blocks) and plays a model that samples one
token -- differ in one setting: ``residue_sample_interval_seconds`` (off in the
baseline). They play the same workload in lockstep, one engine step each, the
order alternating per step; a step is ``EngineCore.step()`` and the
``post_step`` vLLM's loop calls after it, where the sampler runs. A round is
one workload played by both; the ratio of the two round totals is one pair.

Reported per interval: the median paired ratio over the rounds with a
bootstrap 95% interval, and what one sample costs on its own (free-block pick
plus the read on the worker), from which the cost at any interval follows.

    VLLM_TARGET_DEVICE=cpu python bench/vllm_residue_sampling.py [--requests 400] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.cpu_vllm import configure_environment  # noqa: E402  (the CPU platform, before vLLM loads)

configure_environment()
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

from _table import paired_ratio, print_table, target_verdict  # noqa: E402
from vllm_scheduler_overhead import _run, _workload  # noqa: E402  (the same lockstep, the same work)

NUM_BLOCKS = 2048
CLOCK = time.thread_time
#: The default interval and one a hundred times more frequent (a stress setting).
INTERVALS = (5.0, 0.05)


def _engine(model: str, interval: float | None) -> Any:
    from tests.vllm.support import make_engine

    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as handle:
        handle.write(
            "profile: multi-tenant-baseline\nmitigations:\n"
            f"  residue_sample_interval_seconds: {'null' if interval is None else interval}\n"
        )
    os.environ["PCCGUARD_CONFIG"] = path
    return make_engine(
        model, num_gpu_blocks_override=NUM_BLOCKS, max_num_batched_tokens=2048, max_num_seqs=128
    )


class _Arm:
    """One engine core playing one workload, a step at a time: requests arrive 32 per step (untimed)."""

    def __init__(self, engine: Any, workload: list[tuple[str, list[int], str]], tag: str, max_tokens: int):
        self.engine = engine
        self.pending = [(f"{tag}-{rid}", prompt, tenant) for rid, prompt, tenant in workload]
        self.max_tokens = max_tokens
        self.total = 0.0

    def busy(self) -> bool:
        return bool(self.pending) or bool(self.engine.scheduler.has_requests())

    def intake(self) -> None:
        from tests.vllm.support import add, request, salt_for

        for _ in range(min(32, len(self.pending))):
            rid, prompt, tenant = self.pending.pop(0)
            add(
                self.engine,
                request(rid, prompt, salt=salt_for(self.engine, tenant), max_tokens=self.max_tokens),
            )

    def step(self) -> None:
        start = CLOCK()
        _outputs, executed = self.engine.step()
        self.engine.post_step(model_executed=executed)
        self.total += CLOCK() - start


def _sample_cost(engine: Any, n: int = 200) -> float:
    """Seconds per sample on its own: pick free blocks, read them on the worker (nothing is found)."""
    from pccguard.adapters.vllm.runtime import residue

    sampler = engine.pccguard_residue
    start = CLOCK()
    for _ in range(n):
        if residue.sample_now(engine, sampler):
            raise SystemExit("residue found on an idle engine: the measurement is void")
    return (CLOCK() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()

    from pccguard.enclave_runtime.synthetic import describe_llama

    model = str(
        describe_llama(Path(tempfile.mkdtemp(prefix="pccguard-bench-")), vocab=32000, max_positions=4096)
    )
    rows = []
    for interval in INTERVALS:
        # A fresh pair per interval: an engine that played earlier rounds holds their prefixes cached.
        baseline, sampling = _engine(model, None), _engine(model, interval)
        if getattr(baseline, "pccguard_residue", None) is not None:
            raise SystemExit("the baseline samples: the comparison is void")
        sampler = getattr(sampling, "pccguard_residue", None)
        if sampler is None:
            raise SystemExit("the sampling engine has no sampler: the comparison is void")
        warm = _workload(args.requests, seed=-1)  # untimed: first allocations, first cache entries
        _run(
            [
                _Arm(baseline, warm, f"bw{interval}", args.max_tokens),
                _Arm(sampling, warm, f"sw{interval}", args.max_tokens),
            ]
        )
        before = sampler.counters()["residue_samples"]
        pairs: list[tuple[float, float]] = []
        for r in range(args.rounds):
            workload = _workload(args.requests, seed=r)
            arms = [_Arm(baseline, workload, f"b{interval}-{r}", args.max_tokens)]
            arms.append(_Arm(sampling, workload, f"s{interval}-{r}", args.max_tokens))
            _run(arms)
            pairs.append((arms[1].total, arms[0].total))
        ratio, low, high = paired_ratio(pairs)
        taken = sampler.counters()["residue_samples"] - before
        per_sample = _sample_cost(sampling)
        rows.append(
            [
                f"{interval:g} s",
                f"{statistics.median(p[1] for p in pairs):.3f}",
                f"{statistics.median(p[0] for p in pairs):.3f}",
                f"{ratio:.4f} [{low:.4f}, {high:.4f}]",
                f"{taken}",
                f"{per_sample * 1e6:.0f}",
                f"{per_sample / interval:.4%}",
                target_verdict(high, len(pairs), bound=1.01),
            ]
        )
        sampling.shutdown()
        baseline.shutdown()
    print_table(
        f"step() + post_step(), {args.requests} requests x {args.rounds} paired rounds; median round",
        [
            "interval",
            "off (s)",
            "on (s)",
            "ratio [95% CI]",
            "samples",
            "us/sample",
            "cost/interval",
            "<= 1.01",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
