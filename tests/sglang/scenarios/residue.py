"""Scenario: do tenant A's K/V values survive in freed KV slots?

Uses SGLang's real KV pool (``MHATokenToKVPool``), token and paged allocators,
``RadixCache`` and ``UnifiedRadixCache`` (Rust core). Tenant A's canary K/V is
written into its slots; the scenario checks the canary is there before any
free (positive control), then frees the slots the ways SGLang does — request
release, deferred free groups, sorted frees, tree eviction, paged segment
frees, a flush — and counts canary rows left in freed slots. With the plugin
installed it also checks the prefix TTL: an expired node is evicted and its
KV scrubbed.
"""

from __future__ import annotations

import time
from array import array
from typing import Any

import torch
from _common import args, install_plugin, report, server_args

CANARY = 4242.0


def make_pool(size: int, page_size: int) -> Any:
    from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool

    return MHATokenToKVPool(
        size=size,
        page_size=page_size,
        dtype=torch.float32,
        head_num=2,
        head_dim=4,
        layer_num=2,
        device="cpu",
        enable_memory_saver=False,
        enable_alt_stream=False,
    )


def write_canary(pool: Any, slots: torch.Tensor) -> None:
    n = slots.numel()
    k = torch.full((n, 2, 4), CANARY)
    v = torch.full((n, 2, 4), -CANARY)
    for layer in range(2):
        pool.set_kv_buffer(None, slots, k, v, layer_id_override=layer)


def canary_rows(pool: Any, slots: torch.Tensor) -> int:
    """Slots whose K or V in any layer still holds the canary."""
    hits = torch.zeros(slots.numel(), dtype=torch.bool)
    for layer in range(2):
        hits |= (pool.k_buffer[layer][slots] == CANARY).any(dim=(1, 2))
        hits |= (pool.v_buffer[layer][slots] == -CANARY).any(dim=(1, 2))
    return int(hits.sum())


def token_allocator(pool: Any, size: int, need_sort: bool = False) -> Any:
    from sglang.srt.mem_cache.allocator import TokenToKVPoolAllocator

    return TokenToKVPoolAllocator(size, torch.float32, "cpu", pool, need_sort=need_sort)


def paged_allocator(pool: Any, size: int, page_size: int) -> Any:
    from sglang.srt.mem_cache.allocator import PagedTokenToKVPoolAllocator

    return PagedTokenToKVPoolAllocator(size, page_size, torch.float32, "cpu", pool, need_sort=False)


def tree_for(alloc: Any, page_size: int, unified: bool) -> Any:
    from sglang.srt.mem_cache.cache_init_params import CacheInitParams
    from sglang.srt.mem_cache.memory_pool import ReqToTokenPool
    from sglang.srt.mem_cache.radix_cache import RadixCache

    params = CacheInitParams(
        disable=False,
        req_to_token_pool=ReqToTokenPool(4, 128, "cpu", False),
        token_to_kv_pool_allocator=alloc,
        page_size=page_size,
    )
    if not unified:
        return RadixCache(params)
    from sglang.srt.mem_cache.unified_cache.components import ComponentType
    from sglang.srt.mem_cache.unified_radix_cache import UnifiedRadixCache

    params.tree_components = (ComponentType.FULL,)
    return UnifiedRadixCache(params)


def insert(tree: Any, alloc: Any, pool: Any, tokens: list[int]) -> torch.Tensor:
    from sglang.srt.mem_cache.base_prefix_cache import InsertParams
    from sglang.srt.mem_cache.radix_cache import RadixKey

    slots = alloc.alloc(len(tokens))
    write_canary(pool, slots)
    tree.insert(InsertParams(key=RadixKey(array("q", tokens)), value=slots))
    return slots


def stale_in_fresh_allocation(pool: Any, alloc: Any) -> int:
    fresh = alloc.alloc(alloc.available_size())
    return canary_rows(pool, fresh) if fresh is not None else -1


def case_release() -> dict[str, int]:
    pool = make_pool(64, 1)
    alloc = token_allocator(pool, 64)
    slots = alloc.alloc(20)
    write_canary(pool, slots)
    before = canary_rows(pool, slots)
    alloc.free(slots)
    return {
        "before": before,
        "after": canary_rows(pool, slots),
        "fresh": stale_in_fresh_allocation(pool, alloc),
    }


def case_deferred() -> dict[str, int]:
    pool = make_pool(64, 1)
    alloc = token_allocator(pool, 64, need_sort=True)
    slots = alloc.alloc(16)
    write_canary(pool, slots)
    before = canary_rows(pool, slots)
    alloc.free_group_begin()
    alloc.free(slots[:8])
    alloc.free(slots[8:])
    alloc.free_group_end()
    return {
        "before": before,
        "after": canary_rows(pool, slots),
        "fresh": stale_in_fresh_allocation(pool, alloc),
    }


def case_evict(unified: bool) -> dict[str, int]:
    from sglang.srt.mem_cache.base_prefix_cache import EvictParams

    pool = make_pool(64, 1)
    alloc = token_allocator(pool, 64)
    tree = tree_for(alloc, 1, unified)
    slots = insert(tree, alloc, pool, [11, 12, 501, 502, 503, 504, 505, 506])
    before = canary_rows(pool, slots)
    tree.evict(EvictParams(num_tokens=100))
    return {
        "before": before,
        "after": canary_rows(pool, slots),
        "fresh": stale_in_fresh_allocation(pool, alloc),
    }


def case_paged() -> dict[str, int]:
    from sglang.srt.mem_cache.base_prefix_cache import EvictParams

    pool = make_pool(64, 4)
    alloc = paged_allocator(pool, 64, 4)
    tree = tree_for(alloc, 4, unified=False)
    slots = insert(tree, alloc, pool, list(range(600, 612)))
    loose = alloc.alloc(8)
    write_canary(pool, loose)
    before = canary_rows(pool, slots) + canary_rows(pool, loose)
    tree.evict(EvictParams(num_tokens=100))
    alloc.free_segment(loose, start_pos=0)
    after = canary_rows(pool, slots) + canary_rows(pool, loose)
    return {"before": before, "after": after, "fresh": stale_in_fresh_allocation(pool, alloc)}


def case_flush() -> dict[str, int]:
    pool = make_pool(64, 1)
    alloc = token_allocator(pool, 64)
    tree = tree_for(alloc, 1, unified=True)
    slots = insert(tree, alloc, pool, [11, 12, 501, 502, 503, 504])
    before = canary_rows(pool, slots)
    # Scheduler.flush_cache: tree.reset(); req_to_token_pool.clear(); allocator.clear()
    tree.reset()
    alloc.clear()
    return {
        "before": before,
        "after": canary_rows(pool, slots),
        "fresh": stale_in_fresh_allocation(pool, alloc),
    }


def case_ttl(plugin: bool) -> dict[str, Any]:
    from pccguard.adapters.sglang.runtime import ttl

    pool = make_pool(64, 1)
    alloc = token_allocator(pool, 64)
    tree = tree_for(alloc, 1, unified=False)
    old = insert(tree, alloc, pool, [11, 12, 501, 502, 503])
    time.sleep(0.05)
    cutoff = time.monotonic()
    recent = insert(tree, alloc, pool, [70, 71, 72])
    expired = ttl.expire(tree, cutoff) if plugin else 0
    return {
        "expired_tokens": expired,
        "old_canary": canary_rows(pool, old),
        "recent_canary": canary_rows(pool, recent),
        "tree_tokens": int(tree.total_size()),
    }


def main() -> None:
    model, plugin = args()
    if plugin:
        install_plugin(server_args(model))
    result: dict[str, Any] = {
        "release": case_release(),
        "deferred": case_deferred(),
        "evict_radix": case_evict(unified=False),
        "evict_unified": case_evict(unified=True),
        "paged": case_paged(),
        "flush": case_flush(),
        "ttl": case_ttl(plugin),
    }
    if plugin:
        from pccguard.adapters.sglang.runtime.state import STATE

        result["counters"] = STATE.counters()
    report(result)


if __name__ == "__main__":
    main()
