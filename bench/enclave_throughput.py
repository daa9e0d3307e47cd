"""Throughput of the enclave runtime: unprotected vs all-in-enclave vs hybrid (Mode P), same model, same machine.

Usage: ``python bench/enclave_throughput.py [--hidden 1024] [--layers 8] [--new 32] [--device auto]
[--json out.json]``.

* unprotected — ``transformers`` ``LlamaForCausalLM`` with the LoRA merged, float32, every core;
  with a GPU, also the same model on the GPU (the baseline a GPU server would run).
* all-enclave — the enclave process runs every op (the TEE-only baseline), every core.
* hybrid — the default plan: public GEMMs blinded on the accelerator process, the
  rest in the enclave process, half the cores each. The online path uses blinding
  factors precomputed offline; the offline cost is reported separately. With a GPU
  the accelerator process runs once on the CPU (the control) and once on the GPU.

Traffic is counted from the enclave's own counters (payload elements per token
per layer) and compared with the notes' budget formula for the same dimensions.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pccguard.enclave_runtime import synthetic
from pccguard.enclave_runtime.accelerator import pick_device
from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.plan import all_enclave_plan, default_plan

FIELD_BYTES = 6  # one element of F_p, p < 2^48, on the wire


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(x.split()[1])
            for x in Path("/proc/meminfo").read_text().splitlines()
            if x.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 2**20, 1),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def budget_elems(hidden: int, q_dim: int, kv_dim: int, inter: int) -> tuple[int, int]:
    """The notes' per-token-per-layer element count: up = inputs of the 4 GEMM groups, down = outputs."""
    up = hidden + q_dim + hidden + inter
    down = (q_dim + 2 * kv_dim) + hidden + 2 * inter + hidden
    return up, down


def bench_all(
    model_dir: Path, adapter_dir: Path, prompt: list[int], new: int, repeats: int, device: str
) -> dict[str, Any]:
    """Time every mode round-robin (``repeats`` rounds, best per mode) so load drift hits all alike.

    With a GPU (``device`` resolves to CUDA) two rows join the CPU ones: the
    unprotected model on the GPU, and the hybrid with its accelerator process on
    the GPU; the hybrid with a CPU accelerator stays as the control, so one run
    shows what the GPU buys each side.
    """
    cores = os.cpu_count() or 1
    half = max(1, cores // 2)
    gpu = pick_device(device).type == "cuda"
    reference = synthetic.reference_model(model_dir, adapter_dir).merge_and_unload().eval()
    reference_gpu = copy.deepcopy(reference).to("cuda") if gpu else None
    startup: dict[str, float] = {}
    executors: dict[str, HybridExecutor] = {}

    def start(name: str, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        executors[name] = HybridExecutor.start(model_dir, adapter_dir, timeout_s=600, **kwargs)
        startup[name] = time.perf_counter() - t0

    rows = len(prompt) + new - 1  # token rows through each layer group per request
    hybrid_devices = ["cpu", "cuda"] if gpu else ["cpu"]
    try:
        start("all_enclave", plan=all_enclave_plan(), enclave_threads=cores)
        for dev in hybrid_devices:
            start(
                f"hybrid_{dev}",
                plan=default_plan(),
                device=dev,
                enclave_threads=half,
                accelerator_threads=max(1, cores - half),
            )
        offline = {dev: executors[f"hybrid_{dev}"].precompute(rows * (repeats + 1)) for dev in hybrid_devices}
        torch.set_num_threads(cores)
        modes: dict[str, Callable[[], object]] = {
            "unprotected": lambda: synthetic.reference_greedy(reference, prompt, new)
        }
        if reference_gpu is not None:
            modes["unprotected_gpu"] = lambda: synthetic.reference_greedy(reference_gpu, prompt, new)
        modes["all_enclave"] = lambda: executors["all_enclave"].generate(prompt, new)
        for dev in hybrid_devices:
            modes[f"hybrid_{dev}"] = functools.partial(executors[f"hybrid_{dev}"].generate, prompt, new)
        for fn in modes.values():  # warm-up round; a hybrid consumes its own precomputed rows
            fn()
        main_hybrid = executors[f"hybrid_{hybrid_devices[-1]}"]
        before = main_hybrid.stats()
        times: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(repeats):
            for name, fn in modes.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        after = main_hybrid.stats()
        accelerator_devices = {
            dev: str(executors[f"hybrid_{dev}"].ready.get("accelerator_device")) for dev in hybrid_devices
        }
    finally:
        for ex in executors.values():
            ex.close()
    rows_done = rows * repeats  # token rows through each layer group (prefill rows included)
    steps = new * repeats  # forward passes = generated tokens (lm_head runs once per pass)

    def per(group: str, field_name: str) -> float:
        count = after[field_name].get(group, 0) - before[field_name].get(group, 0)
        return count / (steps if group == "lm_head" else rows_done)

    groups = list(after["elems_up"])
    return {
        "times": times,
        "best": {k: min(v) for k, v in times.items()},
        "startup_s": startup,
        "offline_s": offline,
        "offline_s_per_token": {dev: s / (rows * (repeats + 1)) for dev, s in offline.items()},
        "accelerator_devices": accelerator_devices,
        "elems_up_per_token": {g: per(g, "elems_up") for g in groups},
        "elems_down_per_token": {g: per(g, "elems_down") for g in groups},
        "pool_miss_rows": after["pool_miss_rows"] - before["pool_miss_rows"],
        "rounds_per_token": (after["rounds"] - before["rounds"]) / steps,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=2816)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the accelerator process and the GPU baseline run (auto: CUDA when present)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")

    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        base = synthetic.make_llama(
            Path(tmp) / "base",
            hidden=args.hidden,
            intermediate=args.intermediate,
            layers=args.layers,
            heads=args.heads,
            kv_heads=args.kv_heads,
            vocab=args.vocab,
            init_range=0.02,
        )
        lora = synthetic.make_lora(base, Path(tmp) / "lora", rank=args.rank, alpha=2.0 * args.rank)
        prompt = [(7 * i + 3) % args.vocab for i in range(args.prompt)]
        hybrid = bench_all(base, lora, prompt, args.new, args.repeats, args.device)
    best = hybrid["best"]
    unprotected = best["unprotected"]
    info["loadavg_after"] = os.getloadavg()

    head_dim = args.hidden // args.heads
    up_b, down_b = budget_elems(
        args.hidden, args.heads * head_dim, args.kv_heads * head_dim, args.intermediate
    )
    layer_groups = ("qkv", "o", "gate_up", "down")
    up = sum(hybrid["elems_up_per_token"].get(g, 0) for g in layer_groups) / args.layers
    down = sum(hybrid["elems_down_per_token"].get(g, 0) for g in layer_groups) / args.layers
    tok = args.new
    labels = {
        "unprotected": "unprotected (transformers, fp32, CPU)",
        "unprotected_gpu": "unprotected (transformers, fp32, GPU)",
        "all_enclave": "all-in-enclave (TEE-only, CPU)",
        "hybrid_cpu": "hybrid Mode P, online, CPU accelerator",
        "hybrid_cuda": "hybrid Mode P, online, GPU accelerator",
    }
    gpu_base = best.get("unprotected_gpu")
    print(
        f"machine: {info['nproc']} cores, {info['cpu']}, {info['ram_gib']} GiB RAM, torch {info['torch']}, "
        f"CUDA {info['gpu'] if info['cuda'] else 'no'}"
    )
    print(
        f"model: LLaMA hidden {args.hidden}, intermediate {args.intermediate}, {args.layers} layers, "
        f"{args.heads}/{args.kv_heads} heads, vocab {args.vocab}, LoRA r={args.rank} on all projections; "
        f"prompt {args.prompt}, {tok} new tokens, best of {args.repeats}"
    )
    header = f"{'mode':<42} {'s/request':>10} {'tokens/s':>9} {'x unprot. CPU':>14}"
    print(header + (f" {'x unprot. GPU':>14}" if gpu_base else ""))
    for name, secs in best.items():
        line = f"{labels[name]:<42} {secs:>10.3f} {tok / secs:>9.2f} {secs / unprotected:>14.2f}"
        print(line + (f" {secs / gpu_base:>14.2f}" if gpu_base else ""))
    for dev, per_token in hybrid["offline_s_per_token"].items():
        print(
            f"hybrid offline precompute ({dev} accelerator): {per_token * 1e3:.1f} ms per token "
            "(enclave, one GEMM pass in exact field arithmetic)"
        )
    print(
        f"accelerator process devices: {hybrid['accelerator_devices']}; "
        f"pool misses online: {hybrid['pool_miss_rows']}"
    )
    for name in (k for k in best if k.startswith("hybrid")):
        print(f"{name} / all-in-enclave time: {best[name] / best['all_enclave']:.2f}")
    print(f"load average after the run: {info['loadavg_after'][0]:.2f} on {info['nproc']} cores")
    print(
        f"traffic per token per layer: up {up:.0f} + down {down:.0f} = {up + down:.0f} elements "
        f"(budget formula: {up_b} + {down_b} = {up_b + down_b}); "
        f"{(up + down) * FIELD_BYTES / 1024:.1f} KiB at {FIELD_BYTES} B/element "
        f"(the notes assume 4 B: {(up_b + down_b) * 4 / 1024:.1f} KiB); "
        f"lm_head adds {hybrid['elems_up_per_token'].get('lm_head', 0):.0f} + "
        f"{hybrid['elems_down_per_token'].get('lm_head', 0):.0f} per token; "
        f"{hybrid['rounds_per_token']:.1f} round trips per generated token"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": vars(args) | {"json": str(args.json)},
                    "results": hybrid,
                    "budget_elems": [up_b, down_b],
                    "elems_per_token_layer": [up, down],
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
