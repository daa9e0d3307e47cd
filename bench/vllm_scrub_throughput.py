"""Scrub throughput on CPU KV tensors: pccguard's zeroing path vs a plain ``zero_()`` of the same bytes.

The scrub path is what runs on a CPU worker: the blocks of
``new_block_ids_to_zero`` zeroed through pccguard's worker-extension wrapper
(one ``memset`` per block and layer; vLLM's own ``CPUModelRunner._zero_block_ids``,
one ``zero_()`` per block view, is shown for comparison). The reference zeroes one contiguous tensor holding the same number
of bytes. Blocks are scattered at random, as freed blocks are.

    VLLM_TARGET_DEVICE=cpu python bench/vllm_scrub_throughput.py [--layers 8] [--blocks 1024] [--scrub 256]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from types import SimpleNamespace

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

import torch


def main() -> int:
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.worker.cpu_model_runner import CPUModelRunner

    from pccguard.adapters.vllm.runtime.worker import _force_zeroing

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=1024)
    parser.add_argument("--scrub", type=int, default=256, help="blocks zeroed per call")
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)

    shape = (args.blocks, args.kv_heads, args.block_size, 2 * args.head_size)  # vLLM's CPU layout
    names = [f"layers.{i}.attn" for i in range(args.layers)]
    kv = {n: torch.ones(shape, dtype=torch.float16) for n in names}
    spec = FullAttentionSpec(
        block_size=args.block_size, num_kv_heads=args.kv_heads, head_size=args.head_size, dtype=torch.float16
    )
    runner = SimpleNamespace(
        kv_cache_config=KVCacheConfig(
            num_blocks=args.blocks, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(names, spec)]
        ),
        compilation_config=SimpleNamespace(
            static_forward_context={n: SimpleNamespace(kv_cache=t) for n, t in kv.items()}
        ),
    )
    runner._zero_block_ids = lambda ids: CPUModelRunner._zero_block_ids(runner, ids)
    vllm_zero = runner._zero_block_ids
    _force_zeroing(runner)

    block_bytes = kv[names[0]][0].numel() * kv[names[0]].element_size()
    total = block_bytes * args.scrub * args.layers
    reference = torch.ones(total // 2, dtype=torch.float16)
    rng = random.Random(0)
    scrub_s, zero_s, vllm_s = [], [], []
    for _ in range(args.repeat):
        ids = rng.sample(range(args.blocks), args.scrub)
        for t in kv.values():
            t[ids] = 1.0
        start = time.perf_counter()
        runner._zero_block_ids(ids)
        scrub_s.append(time.perf_counter() - start)
        assert all(int(torch.count_nonzero(t[ids])) == 0 for t in kv.values())
        reference.fill_(1.0)
        start = time.perf_counter()
        reference.zero_()
        zero_s.append(time.perf_counter() - start)
        for t in kv.values():
            t[ids] = 1.0
        start = time.perf_counter()
        vllm_zero(ids)
        vllm_s.append(time.perf_counter() - start)
    scrub, zero, plain = statistics.median(scrub_s), statistics.median(zero_s), statistics.median(vllm_s)
    gb = total / 1e9
    print(
        f"{args.scrub} scattered blocks x {args.layers} layers = {total / 2**20:.0f} MiB per call, 1 thread"
    )
    print(f"{'path':<34} {'median (ms)':>12} {'GB/s':>8}")
    print(f"{'scrub (new_block_ids_to_zero)':<34} {scrub * 1e3:>12.2f} {gb / scrub:>8.2f}")
    print(f"{'plain zero_() of the same bytes':<34} {zero * 1e3:>12.2f} {gb / zero:>8.2f}")
    print(f"{'(vLLM CPU _zero_block_ids)':<34} {plain * 1e3:>12.2f} {gb / plain:>8.2f}")
    print(f"ratio scrub / zero_ throughput: {zero / scrub:.2f}  (target >= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
