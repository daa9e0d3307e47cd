"""Scheduler overhead of pccguard's vLLM scheduler: ``schedule()`` + ``update_from_output()``, plugin vs vLLM.

Both schedulers are vLLM's real ``Scheduler`` over the same configuration and
the same workload (thousands of requests from several tenants sharing
prefixes, so requests hit, finish, get evicted and are scrubbed); the
benchmark plays the model runner. The two run interleaved in one process, in
lockstep: at every step both schedulers take their step, the order alternating
from step to step, so a burst of the machine's other load lands on both sides
of a pair. A round is one workload played by both; the ratio of the two round
totals is one pair. The table reports the median paired ratio over at least 30
rounds with a bootstrap 95% interval.

    VLLM_TARGET_DEVICE=cpu python bench/vllm_scheduler_overhead.py [--requests 1000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

import torch  # before regopy: see docs/vllm.md

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _table import paired_ratio, print_table, target_verdict

BLOCK = 16
NUM_BLOCKS = 2048
#: This thread's CPU time: on a shared machine, wall time mostly measures the neighbours (``--wall`` for it).
CLOCK = time.thread_time


def _model_dir() -> str:
    from pccguard.enclave_runtime.synthetic import describe_llama

    return str(describe_llama(tempfile.mkdtemp(prefix="pccguard-bench-"), vocab=32000, max_positions=4096))


def _config(model: str, plugin: bool) -> Any:
    from vllm.engine.arg_utils import EngineArgs

    os.environ["PCCGUARD_CONFIG"] = _write_config(plugin)
    config = EngineArgs(
        model=model,
        skip_tokenizer_init=True,
        enable_prefix_caching=True,
        max_model_len=2048,
        max_num_batched_tokens=2048,
        max_num_seqs=128,
        block_size=BLOCK,
    ).create_engine_config()
    config.cache_config.num_gpu_blocks = NUM_BLOCKS
    return config


def _write_config(plugin: bool) -> str:
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as handle:
        handle.write("profile: multi-tenant-baseline\n" if plugin else "enabled: false\n")
    return path


def _scheduler(config: Any) -> Any:
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=2, head_size=16, dtype=torch.float16)
    kv = KVCacheConfig(
        num_blocks=NUM_BLOCKS, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(["l0", "l1"], spec)]
    )
    cls = config.scheduler_config.get_scheduler_cls()
    return cls(
        vllm_config=config,
        kv_cache_config=kv,
        structured_output_manager=StructuredOutputManager(config),
        block_size=BLOCK,
        hash_block_size=BLOCK,
        log_stats=False,
    )


def _workload(n: int, seed: int) -> list[tuple[str, list[int], str]]:
    rng = random.Random(seed)
    prefixes = [[rng.randrange(32000) for _ in range(rng.choice((64, 128, 256)))] for _ in range(16)]
    out = []
    for i in range(n):
        tenant = f"pccguard-t-{rng.randrange(8)}"
        prompt = prefixes[rng.randrange(len(prefixes))] + [
            rng.randrange(32000) for _ in range(rng.randrange(8, 120))
        ]
        out.append((f"r{i}", prompt, tenant))
    return out


class _Arm:
    """One scheduler playing one workload, a step at a time: requests arrive 32 per step."""

    def __init__(self, scheduler: Any, workload: list[tuple[str, list[int], str]], max_tokens: int) -> None:
        from vllm.sampling_params import SamplingParams
        from vllm.utils.hashing import get_hash_fn_by_name
        from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash

        fn = get_hash_fn_by_name("sha256")
        init_none_hash(fn)
        self.hasher = get_request_block_hasher(BLOCK, fn)
        self.params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
        self.scheduler = scheduler
        self.pending = list(workload)
        self.times: list[float] = []

    def busy(self) -> bool:
        return bool(self.pending) or bool(self.scheduler.has_requests())

    def intake(self) -> None:
        """Untimed: what reaches the scheduler before ``schedule()`` (request building, the salt gate)."""
        from vllm.v1.request import Request

        scheduler = self.scheduler
        gate = getattr(scheduler, "pccguard_salt_gate", None)
        for _ in range(min(32, len(self.pending))):  # steady arrivals
            rid, prompt, tenant = self.pending.pop(0)
            if gate is None:
                scheduler.add_request(
                    Request(rid, prompt, self.params, None, cache_salt=tenant, block_hasher=self.hasher)
                )
                continue
            # What the plugin does per request: the boundary mints the tenant's token, the engine
            # core's gate admits it, and the request is built (and hashed) once, salted.
            token = gate.keys.mint(gate.keys.tenant_salt(tenant))
            salt = gate.admit(token)
            request = Request(rid, prompt, self.params, None, cache_salt=salt, block_hasher=self.hasher)
            request._pccguard_salted = True
            scheduler.add_request(request)

    def step(self) -> None:
        """Timed: one ``schedule()`` and the ``update_from_output()`` of a model runner that samples 1 token."""
        from vllm.v1.outputs import ModelRunnerOutput

        scheduler = self.scheduler
        start = CLOCK()
        so = scheduler.schedule()
        ids = list(so.num_scheduled_tokens)
        sampled = []
        for rid in ids:
            req = scheduler.requests[rid]
            done = req.num_computed_tokens + so.num_scheduled_tokens[rid] >= req.num_tokens
            sampled.append([1] if done else [])
        out = ModelRunnerOutput(
            req_ids=ids, req_id_to_index={r: k for k, r in enumerate(ids)}, sampled_token_ids=sampled
        )
        scheduler.update_from_output(so, out)
        self.times.append(CLOCK() - start)


def _run(arms: list[_Arm]) -> None:
    """Drive the arms in lockstep, alternating which goes first at every step.

    The two schedulers are deterministic over the same workload, so step k of
    one does the same work as step k of the other; measuring them microseconds
    apart leaves a burst of the machine's other load on both sides of a pair.
    """
    k = 0
    while any(arm.busy() for arm in arms):
        for arm in arms if k % 2 == 0 else arms[::-1]:
            if arm.busy():
                arm.intake()
                arm.step()
        k += 1


def _paired_rounds(
    baseline: Any,
    candidate: Any,
    args: argparse.Namespace,
    step_times: dict[str, list[float]] | None = None,
    prepare: Any = None,
) -> list[tuple[float, float]]:
    """``args.rounds`` workloads, each played by both schedulers in lockstep: (candidate, baseline) totals.

    ``prepare``, when given, is applied to each candidate scheduler before it plays.
    """
    pairs: list[tuple[float, float]] = []
    for r in range(args.rounds):
        workload = _workload(args.requests, seed=r)
        arms = {
            "vllm": _Arm(_scheduler(baseline), workload, args.max_tokens),
            "pccguard": _Arm(_scheduler(candidate), workload, args.max_tokens),
        }
        if prepare is not None:
            prepare(arms["pccguard"].scheduler)
        gc.collect()
        order = ["vllm", "pccguard"] if r % 2 == 0 else ["pccguard", "vllm"]
        _run([arms[name] for name in order])
        if len(arms["vllm"].times) != len(arms["pccguard"].times):
            raise SystemExit("the two schedulers took different numbers of steps: not the same work")
        if step_times is not None:
            for name, arm in arms.items():
                step_times[name] += arm.times
        pairs.append((sum(arms["pccguard"].times), sum(arms["vllm"].times)))
    return pairs


def _ablation(full: Any, baseline: Any, args: argparse.Namespace) -> None:
    """The same paired measurement with one mitigation installed at a time (the plan edited, nothing else)."""
    from pccguard.adapters.vllm.runtime.block_events import BlockEvents
    from pccguard.adapters.vllm.runtime.plan import PLAN_KEY

    def observe(scheduler: Any) -> None:
        BlockEvents.of(scheduler.kv_cache_manager.block_pool)

    rows = []
    #: label -> (what the plan installs, what is done to the scheduler before it plays)
    variants: dict[str, tuple[list[str], Any]] = {
        "subclass, nothing installed": ([], None),
        "subclass + block-pool observer, no subscriber": ([], observe),
        "scrub_freed_kv": (["scrub_freed_kv"], None),
        "tenant_cache_salt": (["tenant_cache_salt"], None),
        "prefix_cache_ttl": (["prefix_cache_ttl"], None),
    }
    for label, (install, prepare) in variants.items():
        config = copy.deepcopy(full)
        plan = config.additional_config[PLAN_KEY]
        plan["install"] = install
        if "prefix_cache_ttl" not in install:
            plan["ttl_seconds"] = None
        ratio, low, high = paired_ratio(_paired_rounds(baseline, config, args, prepare=prepare))
        rows.append([label, f"{ratio:.3f}", f"[{low:.3f}, {high:.3f}]"])
    print_table(
        f"ablation: one mitigation at a time, {args.requests} requests x {args.rounds} paired rounds",
        ["pccguard scheduler with", "median paired ratio", "bootstrap 95% interval"],
        rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per round (default 1000)")
    parser.add_argument(
        "--rounds", type=int, default=30, help="paired rounds (default 30, at least 30 for the interval)"
    )
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--wall", action="store_true", help="measure wall-clock time instead of CPU time")
    parser.add_argument(
        "--ablation", action="store_true", help="also measure each mitigation alone (same rounds each)"
    )
    args = parser.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter

    model = _model_dir()
    configs = {"vllm": _config(model, plugin=False), "pccguard": _config(model, plugin=True)}
    installed = _installed(_scheduler(configs["pccguard"]))
    missing = {"scrub_freed_kv", "tenant_cache_salt", "prefix_cache_ttl"} - installed
    if missing:
        raise SystemExit(f"the plugin's scheduler lacks {', '.join(sorted(missing))}: nothing to measure")
    step_times: dict[str, list[float]] = {"vllm": [], "pccguard": []}
    pairs = _paired_rounds(configs["vllm"], configs["pccguard"], args, step_times)
    steps = len(step_times["vllm"]) // args.rounds
    ratio, low, high = paired_ratio(pairs)
    clock = "wall-clock" if args.wall else "thread CPU"
    rows = [
        [
            name,
            f"{statistics.median(step_times[name]) * 1e6:.1f}",
            f"{statistics.median(p[k] for p in pairs):.3f}",
        ]
        for k, name in ((1, "vllm"), (0, "pccguard"))
    ]
    print_table(
        f"schedule() + update_from_output(): {args.requests} requests x {args.rounds} paired rounds, "
        f"~{steps} steps per round, in lockstep, order alternating per step; {clock} time",
        ["scheduler", "median step (us)", "median round (s)"],
        rows,
    )
    verdict = target_verdict(high, len(pairs))
    print(
        f"median paired ratio (pccguard / vllm): {ratio:.3f}, bootstrap 95% interval [{low:.3f}, {high:.3f}]"
        f"  (target: upper bound <= 1.03, {verdict})"
    )
    if args.ablation:
        _ablation(configs["pccguard"], configs["vllm"], args)
    own, total = _attribution(configs["pccguard"], _workload(args.requests, seed=99), args.max_tokens)
    print(
        f"pccguard's own code (profiled round): {own * 1e3:.1f} ms of {total * 1e3:.1f} ms = {own / total:.1%}"
    )
    return 0


def _installed(scheduler: Any) -> set[str]:
    """The mitigations the plugin's scheduler runs with (from its own plan, not from this script)."""
    if type(scheduler).__name__ != "PccguardScheduler":
        return set()
    plan = getattr(scheduler, "pccguard_plan", None)
    return set(getattr(plan, "install", ()) or ())


def _attribution(
    config: Any, workload: list[tuple[str, list[int], str]], max_tokens: int
) -> tuple[float, float]:
    """Time spent in pccguard's own functions inside schedule()/update_from_output(), by profiling one round.

    Deterministic where the interleaved timing above is at the mercy of the machine's other load.
    """
    import cProfile
    import pstats

    arm = _Arm(_scheduler(config), workload, max_tokens)
    profile = cProfile.Profile()
    profile.enable()
    _run([arm])
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = own = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, cumtime, callers) in stats.items():
        if name in ("schedule", "update_from_output") and "vllm_scheduler_overhead" in str(list(callers)):
            total += cumtime
        in_pccguard = "/adapters/vllm/runtime/" in filename or filename.endswith(
            "pccguard/enforcement/audit.py"
        )
        if in_pccguard and name not in ("add_request", "derive", "salt_for"):  # request intake: untimed
            own += tottime
    return own, total


if __name__ == "__main__":
    sys.exit(main())
