"""Radix-cache cost of pccguard's hooks: ``match_prefix`` / ``insert`` with salting and TTL vs without.

SGLang 0.5.23's ``RadixCache`` on the CPU, two trees in one process, played in
lockstep: every request goes to both trees, the order alternating from request
to request, so a burst of the machine's other load lands on both sides of a
pair. The plain arm is SGLang with each tenant's own client salt (its native
``cache_salt``), so both trees hold the same entries and hit alike; the
pccguard arm takes the tenant's salt from the plugin's in-memory key set and
runs the TTL tick of the scheduler loop after every insert. The plugin is
installed in the process (as in a scheduler), so the allocator frees of both
arms are scrubbed: frees, allocation and eviction are untimed here, and their
cost is measured in the real engine by ``bench/sglang_engine_throughput.py``.
A round is one workload played by both trees; the ratio of the two round totals
is one pair. It prints the median paired ratio with a bootstrap 95% interval
(target: upper bound at most 1.03).

    .venv-sglang/bin/python bench/sglang_radix_overhead.py [--requests N] [--rounds K]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sglang" / "scenarios"))

from _common import install_plugin, server_args, write_tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import paired_ratio, print_table, target_verdict


def workload(requests: int, seed: int = 0) -> list[tuple[str, list[int]]]:
    """Tenants share system prompts, so lookups hit; each request adds a private tail."""
    rng = random.Random(seed)
    prefixes = [[rng.randrange(3, 1000) for _ in range(48)] for _ in range(8)]
    out = []
    for i in range(requests):
        tenant = f"tenant-{i % 4}"
        out.append((tenant, prefixes[i % 8] + [rng.randrange(3, 1000) for _ in range(16)]))
    return out


def install() -> Any:
    """Install the plugin in this process as SGLang does in a scheduler; the enforcement it decided."""
    model = write_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    config = model.parent / "pcc.yaml"
    config.write_text("profile: multi-tenant-baseline\n")
    os.environ["PCCGUARD_CONFIG"] = str(config)
    enforcement = install_plugin(server_args(str(model)))
    if enforcement is None or not enforcement.active("prefix_cache_ttl"):
        raise SystemExit("the plugin did not install prefix_cache_ttl: nothing to measure")
    return enforcement


def allocator(slots: int) -> Any:
    """SGLang's real token allocator over a real K/V pool of ``slots`` (2 layers, 2 heads of 16, page 1)."""
    from sglang.srt.mem_cache.allocator import TokenToKVPoolAllocator
    from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool

    kv = MHATokenToKVPool(
        size=slots,
        page_size=1,
        dtype=torch.float32,
        head_num=2,
        head_dim=16,
        layer_num=2,
        device="cpu",
        enable_memory_saver=False,
        enable_alt_stream=False,
    )
    return TokenToKVPoolAllocator(slots, torch.float32, "cpu", kv, need_sort=False)


class Arm:
    """One radix tree over its own KV pool and allocator; ``step`` times what the arm adds per request."""

    SIZE = 8192

    def __init__(self, salt_of: Any, tick: Any) -> None:
        from sglang.srt.mem_cache.cache_init_params import CacheInitParams
        from sglang.srt.mem_cache.memory_pool import ReqToTokenPool
        from sglang.srt.mem_cache.radix_cache import RadixCache

        self.alloc = allocator(self.SIZE)
        params = CacheInitParams(
            disable=False,
            req_to_token_pool=ReqToTokenPool(4, 256, "cpu", False),
            token_to_kv_pool_allocator=self.alloc,
            page_size=1,
        )
        self.tree = RadixCache(params)
        self.salt_of = salt_of
        self.tick = tick
        self.timed = 0.0

    def step(self, tenant: str, tokens: list[int]) -> None:
        from sglang.srt.mem_cache.base_prefix_cache import EvictParams, InsertParams, MatchPrefixParams
        from sglang.srt.mem_cache.radix_cache import RadixKey

        tree, alloc = self.tree, self.alloc
        # Timed: the salt, the salted key's match and insert, the scheduler-loop TTL tick.
        t0 = time.thread_time()
        key = RadixKey(array("q", tokens), cache_salt=self.salt_of(tenant))
        tree.match_prefix(MatchPrefixParams(key=key))
        self.timed += time.thread_time() - t0
        need = len(tokens)
        if alloc.available_size() < need:
            tree.evict(EvictParams(num_tokens=need * 8))
        value = alloc.alloc(need)
        t1 = time.thread_time()
        result = tree.insert(InsertParams(key=key, value=value))
        if self.tick is not None:
            self.tick(tree)
        self.timed += time.thread_time() - t1
        if result.prefix_len:  # already cached: free the duplicate slots, as SGLang does
            alloc.free(value[: result.prefix_len])


def arms(enforcement: Any) -> tuple[Arm, Arm]:
    """(plain, pccguard): client salts and no tick, against the plugin's salts and TTL tick."""
    from pccguard.adapters.sglang.runtime import ttl
    from pccguard.adapters.sglang.runtime.salt import tenant_salt

    # Without the plugin each tenant still sends a salt of its own (SGLang's native ``cache_salt``), so both
    # trees hold the same entries with the same hits: the difference is pccguard's code, not less sharing.
    client_salts = {
        f"tenant-{i}": "client-" + hashlib.sha256(f"tenant-{i}".encode()).hexdigest() for i in range(4)
    }

    class Loop:  # stands in for the Scheduler whose loop calls the TTL tick
        tree_cache: Any = None

    loop = Loop()

    def tick(tree: Any) -> None:
        loop.tree_cache = tree
        ttl.tick(loop)

    return Arm(client_salts.__getitem__, None), Arm(lambda t: tenant_salt(enforcement, t), tick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30, help="paired rounds (default 30)")
    opts = parser.parse_args()
    enforcement = install()
    warm_plain, warm_plugin = arms(enforcement)
    for tenant, tokens in workload(200, seed=-1):  # imports, first allocations
        warm_plain.step(tenant, tokens)
        warm_plugin.step(tenant, tokens)
    pairs: list[tuple[float, float]] = []
    times: dict[str, list[float]] = {"none": [], "plugin": []}
    for r in range(opts.rounds):
        plain, plugin = arms(enforcement)
        gc.collect()
        for i, (tenant, tokens) in enumerate(workload(opts.requests, seed=r)):
            for arm in (plain, plugin) if (i + r) % 2 == 0 else (plugin, plain):
                arm.step(tenant, tokens)
        times["none"].append(plain.timed)
        times["plugin"].append(plugin.timed)
        pairs.append((plugin.timed, plain.timed))
    ratio, low, high = paired_ratio(pairs)
    print_table(
        f"SGLang 0.5.23 RadixCache, {opts.requests} requests x {opts.rounds} paired rounds, "
        "in lockstep, order alternating per request; thread CPU time",
        ["radix cache", "median round (s)", "per request (us)"],
        [
            [
                label,
                f"{statistics.median(times[mode]):.4f}",
                f"{statistics.median(times[mode]) / opts.requests * 1e6:.1f}",
            ]
            for mode, label in (
                ("none", "client salts (no pccguard code)"),
                ("plugin", "pccguard salts + TTL tick"),
            )
        ],
    )
    verdict = target_verdict(high, len(pairs))
    print(
        f"median paired ratio (plugin / none): {ratio:.3f}, bootstrap 95% interval [{low:.3f}, {high:.3f}]"
        f"  (target: upper bound <= 1.03, {verdict})"
    )


if __name__ == "__main__":
    main()
