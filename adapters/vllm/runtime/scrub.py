"""Track KV blocks whose last reference is dropped and queue them for zeroing.

vLLM's ``BlockPool`` returns a freed block to the free queue with its KV
values intact; the next request (any tenant) is handed the block as is. This
tracker wraps *one* scheduler's block pool (instance attributes, nothing
class-wide) and queues a block for zeroing when:

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
from collections.abc import Iterable
from typing import Any


class ScrubTracker:
    """Not thread-safe by design: vLLM's scheduler and its block pool live on the engine-core thread."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._pending: dict[int, None] = {}  # insertion-ordered set
        self._dirty: set[int] = set()
        self._reasons: Counter[str] = Counter()
        self._install()

    # ----------------------------------------------------------------- wrapping

    def _install(self) -> None:
        pool = self.pool
        free_blocks = pool.free_blocks
        evict_blocks = pool.evict_blocks
        get_new_blocks = pool.get_new_blocks
        reset = pool.reset_prefix_cache

        def free_wrapper(ordered_blocks: Iterable[Any]) -> None:
            blocks = list(ordered_blocks)
            free_blocks(blocks)
            self._after_free(blocks)

        def evict_wrapper(block_ids: set[int]) -> None:
            evict_blocks(block_ids)
            self.mark_evicted(block_ids, "evict")

        def get_wrapper(num_blocks: int) -> list[Any]:
            blocks = get_new_blocks(num_blocks)
            self._after_allocate(blocks)
            return blocks

        def reset_wrapper() -> bool:
            ok = bool(reset())
            if ok:
                self._after_reset()
            return ok

        pool.free_blocks = free_wrapper
        pool.evict_blocks = evict_wrapper
        pool.get_new_blocks = get_wrapper
        pool.reset_prefix_cache = reset_wrapper

    # ----------------------------------------------------------------- events

    def _queue(self, block_id: int, reason: str) -> None:
        self._dirty.discard(block_id)
        if block_id not in self._pending:
            self._pending[block_id] = None
            self._reasons[reason] += 1

    def _after_free(self, blocks: list[Any]) -> None:
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
            new = [i for i in freed if i not in pending]
            pending.update(dict.fromkeys(new))
            self._reasons["free"] += len(new)

    def _after_allocate(self, blocks: list[Any]) -> None:
        ids = [block.block_id for block in blocks]
        dirty = self._dirty
        # Still holding data: a cached block LRU-evicted by this allocation (or anything no path
        # above scrubbed). Zeroed at the start of this step, before the new owner writes.
        stale = dirty.intersection(ids)
        if stale:
            pending = self._pending
            new = [i for i in stale if i not in pending]
            pending.update(dict.fromkeys(new))
            self._reasons["evict"] += len(new)
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

    def drain(self) -> tuple[list[int], dict[str, int]]:
        """The queued block ids (each once) and how many were queued for which reason."""
        if not self._pending:
            return [], {}
        ids = list(self._pending)
        reasons = dict(self._reasons)
        self._pending.clear()
        self._reasons.clear()
        return ids, reasons
