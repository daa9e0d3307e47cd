"""Track KV blocks whose last reference is dropped and queue them for zeroing.

vLLM's ``BlockPool`` returns a freed block to the free queue with its KV
values intact; the next request (any tenant) is handed the block as is. This
tracker subscribes to *one* scheduler's block pool (``block_events``) and
queues a block for zeroing when:

* it is freed and not kept as a prefix-cache entry (finish, abort, preemption);
* it is evicted from the prefix cache while nobody holds it (``evict_blocks``:
  TTL, connectors), or handed to a new owner by LRU eviction;
* the prefix cache is reset (every block that held data and is now free);
* it is handed out while still holding data for any other reason (a safety net
  that also covers LRU eviction without wrapping vLLM's per-block hot path).

The queue drains into ``SchedulerOutput.new_block_ids_to_zero``, which every
worker zeroes at the start of its next step, before the model writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

from .block_events import BlockEvents, BlockSubscriber

_id_of = attrgetter("block_id")


class ScrubTracker(BlockSubscriber):
    """Not thread-safe by design: vLLM's scheduler and its block pool live on the engine-core thread."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._pending: dict[int, None] = {}  # insertion-ordered set
        self._dirty: set[int] = set()
        self._reasons: Counter[str] = Counter()
        BlockEvents.of(pool).subscribe(self)

    def on_freed(self, blocks: Sequence[Any]) -> None:
        self._after_free(blocks)

    def on_evicted(self, block_ids: Iterable[int]) -> None:
        self.mark_evicted(block_ids, "evict")

    def on_allocated(self, blocks: Sequence[Any]) -> None:
        self._after_allocate(blocks)

    def on_reset(self) -> None:
        self._after_reset()

    # ----------------------------------------------------------------- events

    def _queue(self, block_id: int, reason: str) -> None:
        self._dirty.discard(block_id)
        if block_id not in self._pending:
            self._pending[block_id] = None
            self._reasons[reason] += 1

    # The two hot paths below run on every free and allocation: per block they do one attribute
    # test and leave the rest to C-level set and dict operations.

    def _after_free(self, blocks: Sequence[Any]) -> None:
        pool = self.pool
        freed = [
            block.block_id
            for block in blocks
            if block.ref_cnt == 0
            and block.block_hash is None
            and not block.is_null
            and (block.pool is None or block.pool is pool)
        ]
        if freed:
            self._dirty.difference_update(freed)
            pending = self._pending
            before = len(pending)
            pending.update(dict.fromkeys(freed))
            self._reasons["free"] += len(pending) - before

    def _after_allocate(self, blocks: Sequence[Any]) -> None:
        ids = list(map(_id_of, blocks))
        dirty = self._dirty
        # Still holding data: a cached block LRU-evicted by this allocation (or anything no path
        # above scrubbed). Zeroed at the start of this step, before the new owner writes.
        stale = dirty.intersection(ids)
        if stale:
            pending = self._pending
            before = len(pending)
            pending.update(dict.fromkeys(stale))
            self._reasons["evict"] += len(pending) - before
        dirty.update(ids)

    def _after_reset(self) -> None:
        ids = [i for i in self._dirty if self.pool.blocks[i].ref_cnt == 0]
        for block_id in ids:
            self._queue(block_id, "reset")

    def mark_evicted(self, block_ids: Iterable[int], reason: str) -> None:
        """Queue evicted blocks nobody holds (a held block is queued when its holder frees it)."""
        blocks = self.pool.blocks
        for block_id in block_ids:
            block = blocks[block_id]
            if block.ref_cnt == 0 and block.block_hash is None and block_id in self._dirty:
                self._queue(block_id, reason)

    # ----------------------------------------------------------------- draining

    def pending(self) -> bool:
        return bool(self._pending)

    def queued(self, block_id: int) -> bool:
        """Whether this block waits for zeroing (the residue sampler leaves it alone until it is zeroed)."""
        return block_id in self._pending

    def drain(self) -> tuple[list[int], dict[str, int]]:
        """The queued block ids (each once) and how many were queued for which reason."""
        if not self._pending:
            return [], {}
        ids = list(self._pending)
        reasons = dict(self._reasons)
        self._pending.clear()
        self._reasons.clear()
        return ids, reasons
