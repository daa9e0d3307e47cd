"""Expire prefix-cache entries older than a TTL (then the scrub tracker zeroes them).

vLLM keeps a finished request's full blocks as prefix-cache entries until LRU
pressure evicts them, which may be never on a quiet server. This tracker
records when each block became a cache entry (wrapping ``_insert_block_hash``
and ``_remove_cached_block_hashes`` of one pool) and evicts the entries older
than the TTL through the pool's own ``evict_blocks``. Age counts from the
first caching, not the last hit: a popular prefix still expires.
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
        self._born: dict[int, float] = {}  # insertion order is time order
        self._install()

    def _install(self) -> None:
        pool = self.pool
        insert = pool._insert_block_hash
        remove = pool._remove_cached_block_hashes
        reset = pool.reset_prefix_cache

        def insert_wrapper(block_hash: Any, block: Any, num_tokens: int | None) -> None:
            insert(block_hash, block, num_tokens)
            if block.block_id not in self._born and block.block_hash is not None:
                self._born[block.block_id] = self.clock()

        def remove_wrapper(block: Any) -> list[Any]:
            self._born.pop(block.block_id, None)
            return list(remove(block))

        def reset_wrapper() -> bool:
            ok = bool(reset())
            if ok:
                self._born.clear()
            return ok

        pool._insert_block_hash = insert_wrapper
        pool._remove_cached_block_hashes = remove_wrapper
        pool.reset_prefix_cache = reset_wrapper

    def next_expiry(self) -> float | None:
        """Clock time at which the oldest entry expires, or None when nothing is cached."""
        for born in self._born.values():
            return born + self.ttl
        return None

    def expired_pending(self) -> bool:
        expiry = self.next_expiry()
        return expiry is not None and self.clock() >= expiry

    def sweep(self) -> list[int]:
        """Evict every entry older than the TTL; return the evicted block ids."""
        now = self.clock()
        expired: list[int] = []
        for block_id, born in self._born.items():
            if now - born < self.ttl:
                break
            expired.append(block_id)
        if expired:
            self.pool.evict_blocks(set(expired))
            for block_id in expired:  # an entry whose hash was already gone is dropped too
                self._born.pop(block_id, None)
        return expired
