"""Scheduler overhead of pccguard's vLLM scheduler: ``schedule()`` + ``update_from_output()``, plugin vs vLLM.

Both schedulers are vLLM's real ``Scheduler`` over the same configuration and
the same workload (thousands of requests from several tenants sharing
prefixes, so requests hit, finish, get evicted and are scrubbed); the
benchmark plays the model runner. The two run interleaved, round by round, in
one process, and the table reports the median time of one scheduler step.

    VLLM_TARGET_DEVICE=cpu python bench/vllm_scheduler_overhead.py [--requests 4000] [--rounds 6]
"""

from __future__ import annotations

import argparse
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

BLOCK = 16
NUM_BLOCKS = 2048
#: This thread's CPU time: on a shared machine, wall time mostly measures the neighbours (``--wall`` for it).
CLOCK = time.thread_time


def _model_dir() -> str:
    from transformers import LlamaConfig

    path = tempfile.mkdtemp(prefix="pccguard-bench-")
    LlamaConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    ).save_pretrained(path)
    return path


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


def _run(scheduler: Any, workload: list[tuple[str, list[int], str]], max_tokens: int) -> list[float]:
    from vllm.sampling_params import SamplingParams
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
    from vllm.v1.outputs import ModelRunnerOutput
    from vllm.v1.request import Request

    fn = get_hash_fn_by_name("sha256")
    init_none_hash(fn)
    hasher = get_request_block_hasher(BLOCK, fn)
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    pending = list(workload)
    times: list[float] = []
    while pending or scheduler.has_requests():
        for _ in range(min(32, len(pending))):  # steady arrivals
            rid, prompt, tenant = pending.pop(0)
            salter = getattr(scheduler, "pccguard_salter", None)
            if salter is None:
                scheduler.add_request(
                    Request(rid, prompt, params, None, cache_salt=tenant, block_hasher=hasher)
                )
                continue
            # What the engine core does with the plugin: salt first, then build (and hash) the request once.
            salt, named = salter.derive(tenant)
            request = Request(rid, prompt, params, None, cache_salt=salt, block_hasher=hasher)
            request._pccguard_tenant = named
            scheduler.add_request(request)
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
        times.append(CLOCK() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--wall", action="store_true", help="measure wall-clock time instead of CPU time")
    args = parser.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter

    model = _model_dir()
    configs = {"vllm": _config(model, plugin=False), "pccguard": _config(model, plugin=True)}
    assert type(_scheduler(configs["pccguard"])).__name__ == "PccguardScheduler"
    step_times: dict[str, list[float]] = {"vllm": [], "pccguard": []}
    totals: dict[str, list[float]] = {"vllm": [], "pccguard": []}
    steps = 0
    for r in range(args.rounds):
        order = ["vllm", "pccguard"] if r % 2 == 0 else ["pccguard", "vllm"]
        workload = _workload(args.requests, seed=r)
        for name in order:
            scheduler = _scheduler(configs[name])
            gc.collect()
            times = _run(scheduler, workload, args.max_tokens)
            step_times[name] += times
            totals[name].append(sum(times))
            steps = len(times)
    med = {k: statistics.median(v) for k, v in step_times.items()}
    tot = {k: statistics.median(v) for k, v in totals.items()}
    low = {k: min(v) for k, v in totals.items()}
    clock = "wall-clock" if args.wall else "thread CPU"
    print(
        f"workload: {args.requests} requests x {args.rounds} rounds, ~{steps} steps per round, interleaved; {clock} time"
    )
    print(f"{'scheduler':<10} {'median step (us)':>18} {'median round (s)':>18} {'best round (s)':>16}")
    for name in ("vllm", "pccguard"):
        print(f"{name:<10} {med[name] * 1e6:>18.1f} {tot[name]:>18.3f} {low[name]:>16.3f}")
    print(
        f"ratio (pccguard / vllm): median step {med['pccguard'] / med['vllm']:.3f}, "
        f"median round {tot['pccguard'] / tot['vllm']:.3f}, best round {low['pccguard'] / low['vllm']:.3f}"
        "  (target <= 1.03)"
    )
    own, total = _attribution(configs["pccguard"], _workload(args.requests, seed=99), args.max_tokens)
    print(
        f"pccguard's own code (profiled round): {own * 1e3:.1f} ms of {total * 1e3:.1f} ms = {own / total:.1%}"
    )
    return 0


def _attribution(
    config: Any, workload: list[tuple[str, list[int], str]], max_tokens: int
) -> tuple[float, float]:
    """Time spent in pccguard's own functions inside schedule()/update_from_output(), by profiling one round.

    Deterministic where the interleaved timing above is at the mercy of the machine's other load.
    """
    import cProfile
    import pstats

    scheduler = _scheduler(config)
    profile = cProfile.Profile()
    profile.enable()
    _run(scheduler, workload, max_tokens)
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
