"""``prefix_cache_ttl``: radix-tree nodes older than the TTL are evicted and scrubbed.

SGLang 0.5.23 keeps finished requests' token ids and KV in the tree until
memory pressure evicts them. Its default tree (``UnifiedRadixCache``) keeps node
timestamps inside a Rust core that has no per-node eviction API, so when the TTL
is installed the plugin selects SGLang's Python ``RadixCache`` for plain
full-attention models (through the default radix-cache factory; every other
configuration keeps SGLang's choice and the TTL is reported as not installable).
On the scheduler thread, at most a few times per TTL, every unlocked leaf whose
``last_access_time`` is older than the TTL is freed through the allocator (and so
scrubbed) and deleted, its token ids with it; parents that become expired leaves
follow. KV events record the removals as SGLang's own eviction does.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any

from pccguard.enforcement.audit import AuditKind

from . import targets
from .state import STATE

MITIGATION = "prefix_cache_ttl"
#: Per scheduler (by ``id``): the clock time before which ``tick`` does nothing.
_NEXT_TICK: dict[int, float] = {}


def ttl_seconds() -> float | None:
    current = STATE.current
    if current is None or not current.active(MITIGATION):
        return None
    return current.config.mitigations.prefix_cache_ttl_seconds


def plain_tree_possible(ctx: Any) -> bool:
    """Whether SGLang's Python ``RadixCache`` can serve this configuration."""
    from sglang.srt.runtime_context import get_memory

    memory = get_memory()
    return not (
        ctx.disable_radix_cache
        or ctx.is_hybrid_swa
        or ctx.is_hybrid_ssm
        or ctx.is_dsa
        or ctx.enable_hierarchical_cache
        or memory.enable_lmcache
        or memory.enable_flexkv
        or memory.enable_unified_cache_external_linker
    )


def _around_factory(original: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
    if ttl_seconds() is None or not plain_tree_possible(ctx):
        return original(ctx, *args, **kwargs)
    from sglang.srt.mem_cache.radix_cache import RadixCache

    return RadixCache(params=ctx.params)


def supports_tree(tree: Any) -> bool:
    from sglang.srt.mem_cache.radix_cache import RadixCache

    return type(tree) is RadixCache


def expire(tree: Any, cutoff: float) -> int:
    """Evict every unlocked node last used before ``cutoff`` (monotonic seconds); returns tokens."""
    if getattr(tree, "disable", True) or not supports_tree(tree):
        return 0
    heap = [
        (node.last_access_time, node.id, node)
        for node in list(tree.evictable_leaves)
        if node.last_access_time < cutoff
    ]
    heapq.heapify(heap)
    evicted = 0
    while heap:
        _t, _id, node = heapq.heappop(heap)
        if node.lock_ref > 0 or node.value is None:
            continue
        tree.token_to_kv_pool_allocator.free_segment(node.value, start_pos=0)
        evicted += len(node.value)
        tree._delete_leaf(node)
        tree.kv_events.record_remove(node)
        node.key = None  # drop the token ids with the node
        parent = node.parent
        if (
            parent is not None
            and parent is not tree.root_node
            and len(parent.children) == 0
            and parent.lock_ref == 0
            and parent.last_access_time < cutoff
        ):
            heapq.heappush(heap, (parent.last_access_time, parent.id, parent))
    return evicted


def tick(scheduler: Any, clock: Callable[[], float] = time.monotonic) -> None:
    """Expire old nodes, at most every ``min(1 s, TTL / 4)``; the common case is one clock read and one lookup.

    ``clock`` is the tree's own clock (``TreeNode`` stamps ``time.monotonic``); the start-time
    self-test passes one that runs ahead, to expire an entry without waiting for its TTL.
    """
    now = clock()
    key = id(scheduler)
    if now < _NEXT_TICK.get(key, 0.0):
        return
    ttl = ttl_seconds()
    if ttl is None:
        return
    _NEXT_TICK[key] = now + min(1.0, ttl / 4)
    tokens = expire(scheduler.tree_cache, now - ttl)
    STATE.count(AuditKind.PREFIX_EXPIRED, MITIGATION, tokens, "tokens")


def _before_tick(scheduler: Any, *args: Any, **kwargs: Any) -> None:
    tick(scheduler)
    return None


HOOKS = [
    (targets.RADIX_FACTORY, _around_factory, "AROUND"),
    (targets.SCHEDULER_NEXT_BATCH, _before_tick, "BEFORE"),
    (targets.SCHEDULER_ON_IDLE, _before_tick, "BEFORE"),
]
