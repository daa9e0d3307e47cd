"""Track KV blocks whose last reference is dropped and queue them for zeroing.

vLLM's ``BlockPool`` returns a freed block to the free queue with its KV
values intact; the next request (any tenant) is handed the block as is. This
tracker wraps *one* scheduler's block pool (instance attributes, nothing
class-wide) and queues a block for zeroing when:

* it is freed and not kept as a prefix-cache entry (finish, abort, preemption);
* it is evicted from the prefix cache while nobody holds it (LRU reuse,
  ``evict_blocks``, TTL);
* the prefix cache is reset (every block that held data and is now free);
* it is handed out while still holding data for any other reason (a safety net).

The queue drains into ``SchedulerOutput.new_block_ids_to_zero``, which every
worker zeroes at the start of its next step, before the model writes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any


class ScrubTracker:
    def __init__(self, pool: Any, *, on_queue: Callable[[], None] | None = None) -> None:
        self.pool = pool
        self._pending: dict[int, None] = {}  # insertion-ordered set
        self._dirty: set[int] = set()
        self._reasons: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._on_queue = on_queue
        self._install()

    # ----------------------------------------------------------------- wrapping

    def _install(self) -> None:
        pool = self.pool
        free_blocks = pool.free_blocks
        evict_one = pool._maybe_evict_cached_block
        get_new_blocks = pool.get_new_blocks
        reset = pool.reset_prefix_cache

        def free_wrapper(ordered_blocks: Iterable[Any]) -> None:
            blocks = list(ordered_blocks)
            free_blocks(blocks)
            self._after_free(blocks)

        def evict_wrapper(block: Any) -> bool:
            evicted = bool(evict_one(block))
            if evicted and block.ref_cnt == 0 and not block.is_null:
                self._queue(block.block_id, "evict")
            return evicted

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
        pool._maybe_evict_cached_block = evict_wrapper
        pool.get_new_blocks = get_wrapper
        pool.reset_prefix_cache = reset_wrapper

    # ----------------------------------------------------------------- events

    def _queue(self, block_id: int, reason: str) -> None:
        with self._lock:
            self._dirty.discard(block_id)
            if block_id not in self._pending:
                self._pending[block_id] = None
                self._reasons[reason] += 1
        if self._on_queue is not None:
            self._on_queue()

    def _after_free(self, blocks: list[Any]) -> None:
        pool = self.pool
        for block in blocks:
            if block.ref_cnt == 0 and block.block_hash is None and not block.is_null:
                if block.pool is None or block.pool is pool:
                    self._queue(block.block_id, "free")

    def _after_allocate(self, blocks: list[Any]) -> None:
        stale = []
        with self._lock:
            for block in blocks:
                if block.block_id in self._dirty:
                    stale.append(block.block_id)
                else:
                    self._dirty.add(block.block_id)
        for block_id in stale:  # held data no path above scrubbed (e.g. unpinned blocks): zero before use
            self._queue(block_id, "reuse")
            with self._lock:
                self._dirty.add(block_id)

    def _after_reset(self) -> None:
        with self._lock:
            ids = [i for i in self._dirty if self.pool.blocks[i].ref_cnt == 0]
        for block_id in ids:
            self._queue(block_id, "reset")

    def mark_evicted(self, block_ids: Iterable[int], reason: str) -> None:
        """Queue blocks another component evicted on purpose (TTL) that nobody holds."""
        for block_id in block_ids:
            block = self.pool.blocks[block_id]
            if block.ref_cnt == 0 and block.block_hash is None:
                self._queue(block_id, reason)

    # ----------------------------------------------------------------- draining

    def pending(self) -> bool:
        return bool(self._pending)

    def drain(self) -> tuple[list[int], dict[str, int]]:
        """The queued block ids (each once) and how many were queued for which reason."""
        with self._lock:
            if not self._pending:
                return [], {}
            ids = list(self._pending)
            reasons = dict(self._reasons)
            self._pending.clear()
            self._reasons.clear()
        return ids, reasons
