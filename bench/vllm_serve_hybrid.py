"""``vllm serve`` on the enclave executor: completion throughput and time to first token, protection on vs off.

Every server is a real ``vllm serve`` process on 127.0.0.1 with the pccguard
plugin active and the enclave executor, over the same generated LLaMA model:

* ``hybrid`` -- the default plan: public base GEMMs on the accelerator process
  over one-time-pad blinded inputs, Freivalds-checked, everything else in the
  enclave; masks precomputed while the enclave is idle (the default pool);
* ``hybrid-online`` -- the same plan with no mask pool: every mask product is
  computed when the request needs it;
* ``all-clear`` -- the same executor and processes with protection off: the
  same GEMMs offloaded in the clear, no blinding, no check;
* ``all-enclave`` (context) -- nothing offloaded;
* ``hybrid-regex`` -- ``hybrid`` with every request under a structured-output
  regex: each step waits for vLLM's grammar bitmask and sends it to the
  enclave with the step (not in the default set; name it with ``--variants``).

All run side by side in one run: every server is started first, then the same
workload (fresh random prompts, streamed completions, a fixed number in
flight) is sent round by round with the servers in a new random order each
round, so drift on a shared machine touches all of them alike. Between two
batches the machine idles for ``--idle-gap`` seconds, as a server between
bursts does (the pool refills then). Throughput is completion tokens per
second of wall time; TTFT is measured per request from the streamed response.

    .venv-vllm/bin/python bench/vllm_serve_hybrid.py [--rounds 3] [--requests 16] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # one launcher for tests and benchmarks: tests/e2e/server.py
sys.path.insert(0, str(REPO / "bench"))

from _table import print_table  # noqa: E402

from tests.e2e.server import running_server  # noqa: E402

#: Never completes within the benchmark's token budget, so every request generates max_tokens tokens.
LONG_REGEX = {"structured_outputs": {"regex": "[a-z ]{400}"}}
#: variant -> (partition plan, enclave mask pool in MiB, extra request fields)
VARIANTS: dict[str, tuple[str, int, dict[str, object]]] = {
    "hybrid": ("default", 128, {}),
    "hybrid-online": ("default", 0, {}),
    "all-clear": ("all-clear", 0, {}),
    "all-enclave": ("all-enclave", 0, {}),
    "hybrid-regex": ("default", 128, LONG_REGEX),
}
DEFAULT_VARIANTS = ("hybrid", "hybrid-online", "all-clear", "all-enclave")
TENANT = {"x-pccguard-tenant": "bench"}


def stream_completion(
    base: str, model: str, prompt: list[int], max_tokens: int, extra: dict[str, object]
) -> tuple[float, int, float]:
    """One streamed completion: (time to first token, completion tokens, total seconds)."""
    body = extra | {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    req = urllib.request.Request(
        base + "/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **TENANT},
    )
    start = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    with urllib.request.urlopen(req, timeout=600) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if ttft is None and chunk.get("choices"):
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
    return ttft or float("nan"), tokens, time.perf_counter() - start


def run_batch(
    base: str,
    model: str,
    prompts: list[list[int]],
    max_tokens: int,
    concurrency: int,
    extra: dict[str, object],
) -> tuple[float, list[float]]:
    """Send ``prompts`` with ``concurrency`` in flight; (completion tokens per second, TTFTs)."""
    queue = list(prompts)
    lock = threading.Lock()
    ttfts: list[float] = []
    total = [0]

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                prompt = queue.pop()
            ttft, tokens, _ = stream_completion(base, model, prompt, max_tokens, extra)
            with lock:
                ttfts.append(ttft)
                total[0] += tokens

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total[0] / (time.perf_counter() - start), ttfts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=16, help="requests per server per round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256, help="model width (the GEMMs the plans offload)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--idle-gap", type=float, default=8.0, help="seconds of idleness between batches")
    args = parser.parse_args()
    plans = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(plans) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

    from pccguard.enclave_runtime.tiny_model import make_tiny_llama

    root = Path(tempfile.mkdtemp(prefix="pccguard-bench-serve-"))
    model = make_tiny_llama(
        root / "model", seed=0, hidden=args.hidden, intermediate=args.hidden * 2, layers=args.layers, heads=8
    )
    vocab = int(json.loads((model / "config.json").read_text())["vocab_size"])
    rng = random.Random(0)
    results: dict[str, dict[str, list[float]]] = {p: {"tps": [], "ttft": []} for p in plans}
    with contextlib.ExitStack() as stack:
        servers = {}
        for plan in plans:
            partition, pool_mb, _ = VARIANTS[plan]
            config = f"profile: multi-tenant-baseline\nmitigations: {{hybrid_executor_plan: {partition}}}\n"
            servers[plan] = stack.enter_context(
                running_server(
                    model,
                    root / plan,
                    config,
                    "--max-num-seqs",
                    str(args.concurrency),
                    env={
                        "VLLM_LOGGING_LEVEL": "WARNING",
                        "VLLM_NO_USAGE_STATS": "1",
                        "VLLM_DO_NOT_TRACK": "1",
                        "PCCGUARD_ENCLAVE_MASK_POOL_MB": str(pool_mb),
                    },
                )
            )
            print(f"started {plan}", file=sys.stderr)
        for rnd in range(args.rounds + 1):  # round 0 warms every server up and is not counted
            order = list(plans)
            rng.shuffle(order)
            for plan in order:
                time.sleep(args.idle_gap)
                prompts = [
                    [rng.randrange(3, vocab) for _ in range(args.prompt_tokens)] for _ in range(args.requests)
                ]
                tps, ttfts = run_batch(
                    servers[plan].base,
                    str(model),
                    prompts,
                    args.max_tokens,
                    args.concurrency,
                    VARIANTS[plan][2],
                )
                if rnd:
                    results[plan]["tps"].append(tps)
                    results[plan]["ttft"] += ttfts
            print(f"round {rnd} done", file=sys.stderr)

    base_tps = statistics.median(results["all-clear"]["tps"]) if "all-clear" in results else None
    base_ttft = statistics.median(results["all-clear"]["ttft"]) if "all-clear" in results else None
    rows = []
    for plan in plans:
        tps = statistics.median(results[plan]["tps"])
        ttft = sorted(results[plan]["ttft"])
        p50 = statistics.median(ttft)
        p90 = ttft[int(0.9 * (len(ttft) - 1))]
        rows.append(
            [
                plan,
                f"{tps:.1f}",
                f"{base_tps / tps:.2f}" if base_tps else "-",
                f"{1000 * p50:.0f}",
                f"{1000 * p90:.0f}",
                f"{p50 / base_ttft:.2f}" if base_ttft else "-",
            ]
        )
    print_table(
        f"vllm serve, enclave executor: hidden {args.hidden}, {args.layers} layers, "
        f"{args.prompt_tokens}+{args.max_tokens} tokens, {args.concurrency} in flight, "
        f"{args.rounds}x{args.requests} requests per variant, {args.idle_gap:g} s idle between batches",
        [
            "variant",
            "tok/s",
            "slowdown",
            "TTFT p50 ms",
            "TTFT p90 ms",
            "TTFT p50 ratio",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
