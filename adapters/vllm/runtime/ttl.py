"""Expire prefix-cache entries older than a TTL (then the scrub tracker zeroes them).

vLLM keeps a finished request's full blocks as prefix-cache entries until LRU
pressure evicts them, which may be never on a quiet server. This tracker
records when each block became a cache entry (wrapping the pool's
``cache_full_blocks`` and ``cache_partial_block``, once per request and step,
not per block) and evicts the entries older than the TTL through the pool's
own ``evict_blocks``. Age counts from the first caching, not the last hit: a
popular prefix still expires. A block that lost its entry in between (LRU
eviction, reset) is recognised by its changed hash and skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class PrefixTTL:
    def __init__(self, pool: Any, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.ttl = float(ttl_seconds)
        self.clock = clock
        self._born: dict[int, tuple[float, Any]] = {}  # block id -> (cached at, hash); insertion = time order
        self._install()

    def _record(self, blocks: Any) -> None:
        now = self.clock()
        born = self._born
        for block in blocks:
            current = block.block_hash
            if current is None:
                continue
            seen = born.get(block.block_id)
            if seen is not None and seen[1] == current:
                continue
            if seen is not None:
                del born[block.block_id]  # re-cached under a new hash: moves to the end
            born[block.block_id] = (now, current)

    def _install(self) -> None:
        pool = self.pool
        cache_full = pool.cache_full_blocks
        cache_partial = pool.cache_partial_block
        reset = pool.reset_prefix_cache

        def full_wrapper(
            request: Any,
            blocks: list[Any],
            num_cached_blocks: int,
            num_full_blocks: int,
            *args: Any,
            **kwargs: Any,
        ) -> None:
            cache_full(request, blocks, num_cached_blocks, num_full_blocks, *args, **kwargs)
            if num_full_blocks > num_cached_blocks:
                self._record(blocks[num_cached_blocks:num_full_blocks])

        def partial_wrapper(request: Any, block: Any, *args: Any, **kwargs: Any) -> Any:
            out = cache_partial(request, block, *args, **kwargs)
            self._record((block,))
            return out

        def reset_wrapper() -> bool:
            ok = bool(reset())
            if ok:
                self._born.clear()
            return ok

        pool.cache_full_blocks = full_wrapper
        pool.cache_partial_block = partial_wrapper
        pool.reset_prefix_cache = reset_wrapper

    def next_expiry(self) -> float | None:
        """Clock time at which the oldest entry expires, or None when nothing is cached."""
        for born, _ in self._born.values():
            return born + self.ttl
        return None

    def expired_pending(self) -> bool:
        expiry = self.next_expiry()
        return expiry is not None and self.clock() >= expiry

    def sweep(self) -> list[int]:
        """Evict every entry older than the TTL that still holds the hash it was cached with."""
        now = self.clock()
        expired: list[int] = []
        stale: list[int] = []
        blocks = self.pool.blocks
        for block_id, (born, block_hash) in self._born.items():
            if now - born < self.ttl:
                break
            stale.append(block_id)
            if blocks[block_id].block_hash == block_hash:
                expired.append(block_id)
        for block_id in stale:
            del self._born[block_id]
        if expired:
            self.pool.evict_blocks(set(expired))
        return expired
