"""Offload encryption throughput: pccguard's AES-256-GCM store/load vs a raw copy of the same KV bytes.

Both paths move whole chunks between the paged KV tensors (CPU here) and the
host region: the raw path is a plain ``copy_`` (what an unencrypted host
copy costs on this machine), the encrypted path is
``EncryptedOffloadingWorker.submit_store`` / ``submit_load`` (gather, seal each
chunk in place with the core's AES-256-GCM format and its per-chunk associated
data, authenticate on load).

    VLLM_TARGET_DEVICE=cpu python bench/vllm_offload_crypto.py [--chunks 64] [--layers 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

import torch


def main() -> int:
    from vllm.v1.kv_offload.base import (
        CanonicalKVCacheRef,
        CanonicalKVCaches,
        CanonicalKVCacheTensor,
        GPULoadStoreSpec,
    )
    from vllm.v1.kv_offload.cpu.common import CPULoadStoreSpec

    from pccguard.adapters.vllm.runtime.audit import replace_audit_log
    from pccguard.adapters.vllm.runtime.offload import EncryptedOffloadingWorker
    from pccguard.enforcement.audit import AuditLog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=64, help="chunks (one block each) moved per call")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--block-bytes", type=int, default=64 * 1024, help="bytes per block and layer")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    replace_audit_log(AuditLog("vllm", sinks=[]))

    blocks = 2 * args.chunks
    layers = [
        torch.randint(-128, 127, (blocks, args.block_bytes), dtype=torch.int8) for _ in range(args.layers)
    ]
    caches = CanonicalKVCaches(
        tensors=[CanonicalKVCacheTensor(t, args.block_bytes) for t in layers],
        group_data_refs=[[CanonicalKVCacheRef(i, args.block_bytes) for i in range(args.layers)]],
    )
    worker = EncryptedOffloadingWorker(caches, blocks_per_chunk=1, num_chunks=args.chunks)
    host = [torch.empty((args.chunks, args.block_bytes), dtype=torch.int8) for _ in layers]
    src = list(range(args.chunks))
    dst = list(range(args.chunks, 2 * args.chunks))
    chunk_ids = list(range(args.chunks))
    total = args.chunks * args.layers * args.block_bytes

    times: dict[str, list[float]] = {
        "raw store": [],
        "raw load": [],
        "encrypted store": [],
        "encrypted load": [],
    }
    for job in range(args.repeat):
        start = time.perf_counter()
        for t, h in zip(layers, host, strict=True):
            for j, i in enumerate(src):
                h[j].copy_(t[i])
        times["raw store"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for t, h in zip(layers, host, strict=True):
            for j, i in enumerate(dst):
                t[i].copy_(h[j])
        times["raw load"].append(time.perf_counter() - start)

        start = time.perf_counter()
        worker.submit_store(2 * job, GPULoadStoreSpec(src, [len(src)], [0]), CPULoadStoreSpec(chunk_ids))
        times["encrypted store"].append(time.perf_counter() - start)
        start = time.perf_counter()
        worker.submit_load(2 * job + 1, CPULoadStoreSpec(chunk_ids), GPULoadStoreSpec(dst, [len(dst)], [0]))
        times["encrypted load"].append(time.perf_counter() - start)
        assert all(r.success for r in worker.get_finished())
    assert all(torch.equal(t[dst], t[src]) for t in layers)

    print(
        f"{args.chunks} chunks x {args.layers} layers x {args.block_bytes // 1024} KiB = {total / 2**20:.0f} MiB per call, 1 thread"
    )
    print(f"{'path':<18} {'median (ms)':>12} {'GB/s':>8}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, seconds in med.items():
        print(f"{name:<18} {seconds * 1e3:>12.2f} {total / 1e9 / seconds:>8.2f}")
    print(
        f"encrypted / raw throughput: store {med['raw store'] / med['encrypted store']:.2f}, "
        f"load {med['raw load'] / med['encrypted load']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
