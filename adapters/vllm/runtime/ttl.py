"""Expire prefix-cache entries older than a TTL (then the scrub tracker zeroes them).

vLLM keeps a finished request's full blocks as prefix-cache entries until LRU
pressure evicts them, which may be never on a quiet server. This tracker
records when blocks became cache entries (the ``cached`` events of the pool's
observer, ``block_events``: once per request and step, not per block) and
evicts the entries older than the TTL through the pool's own ``evict_blocks``
-- which the observer publishes to the scrubber, whichever of the two was
built first.

Each event is kept as one batch -- its time, its blocks and the hash each one
was cached with, captured by a C-level ``map`` -- because the hot path must
not pay a Python loop per block. At a sweep, a block of an expired batch is
evicted only if it still holds the hash of that batch: one that lost its entry
in between (LRU eviction, reset) or was re-cached under another hash is
skipped, and its newer batch decides. Age counts from the first caching, not
the last hit, so a popular prefix still expires. A block evicted and later
cached again with the very same content expires by its older batch: early,
never late, so no entry outlives the TTL. Batches whose blocks have moved on
are compacted away once the entries kept exceed twice the pool's blocks, so
memory stays bounded by the pool, not by the request rate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from .block_events import BlockEvents, BlockSubscriber

_hash_of = attrgetter("block_hash")


class PrefixTTL(BlockSubscriber):
    def __init__(
        self,
        pool: Any,
        ttl_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        compact_above: int | None = None,
    ) -> None:
        self.pool = pool
        self.ttl = float(ttl_seconds)
        self.clock = clock
        #: (cached at, blocks, their hashes then), oldest first: events arrive in time order.
        self._batches: deque[tuple[float, Sequence[Any], list[Any]]] = deque()
        self._entries = 0
        self._limit = compact_above if compact_above is not None else max(2 * len(pool.blocks), 1024)
        BlockEvents.of(pool).subscribe(self)

    def on_cached(self, blocks: Sequence[Any]) -> None:
        self._batches.append((self.clock(), blocks, list(map(_hash_of, blocks))))
        self._entries += len(blocks)
        if self._entries > self._limit:
            self._compact()

    def on_reset(self) -> None:
        self._batches.clear()
        self._entries = 0

    @property
    def entries(self) -> int:
        """How many (block, hash) entries are kept: bounded by compaction, not by the request rate."""
        return self._entries

    def _compact(self) -> None:
        """Drop the entries whose block no longer holds the hash they were cached with (amortised O(1))."""
        kept: deque[tuple[float, Sequence[Any], list[Any]]] = deque()
        entries = 0
        for born, blocks, hashes in self._batches:
            live = [
                (b, h) for b, h in zip(blocks, hashes, strict=True) if h is not None and b.block_hash == h
            ]
            if live:
                kept.append((born, [b for b, _ in live], [h for _, h in live]))
                entries += len(live)
        self._batches, self._entries = kept, entries
        self._limit = max(self._limit, 2 * entries)

    def next_expiry(self) -> float | None:
        """Clock time at which the oldest batch expires, or None when nothing was cached since the last sweep."""
        return self._batches[0][0] + self.ttl if self._batches else None

    def expired_pending(self) -> bool:
        batches = self._batches
        return bool(batches) and self.clock() - batches[0][0] >= self.ttl

    def sweep(self) -> list[int]:
        """Evict every entry older than the TTL that still holds the hash it was cached with."""
        now = self.clock()
        expired: dict[int, None] = {}  # insertion-ordered set of block ids
        batches = self._batches
        while batches and now - batches[0][0] >= self.ttl:
            _, blocks, hashes = batches.popleft()
            self._entries -= len(blocks)
            for block, cached_hash in zip(blocks, hashes, strict=True):
                if cached_hash is not None and block.block_hash == cached_hash:
                    expired[block.block_id] = None
        ids = list(expired)
        if ids:
            self.pool.evict_blocks(set(ids))
        return ids
