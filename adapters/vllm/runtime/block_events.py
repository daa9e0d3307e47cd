"""One observer of a vLLM ``BlockPool``: the pool is patched once, every mitigation subscribes.

Scrubbing (``scrub``) and prefix expiry (``ttl``) both need to know what
happens to the blocks of one scheduler's pool. Were each to wrap the pool's
methods itself, whether a TTL eviction reaches the scrubber would depend on
which of the two wrapped ``evict_blocks`` first. Here the pool is given, once,
a class of its own: a subclass of its ``BlockPool`` class whose six methods
call vLLM's and then publish (``BlockPool`` itself and every other pool are
untouched). Every event reaches every subscriber whatever order they were
built in, because a subscriber's own calls into the pool (the TTL's
``evict_blocks``) go through the same methods.

A class rather than instance attributes, so that the pool's instance
dictionary stays vLLM's and the methods are looked up as vLLM's own are. The
wrappers are on vLLM's hot path: ``bench/vllm_scheduler_overhead.py --ablation``
puts the observer alone at about 3.6% of ``schedule()`` + ``update_from_output()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class BlockSubscriber:
    """Base of a subscriber: every event is a no-op unless overridden (only overridden ones are called)."""

    def on_freed(self, blocks: Sequence[Any]) -> None:
        """Blocks whose reference ``free_blocks`` dropped."""

    def on_evicted(self, block_ids: Iterable[int]) -> None:
        """Block ids ``evict_blocks`` was asked to drop from the prefix cache."""

    def on_allocated(self, blocks: Sequence[Any]) -> None:
        """Blocks ``get_new_blocks`` handed out."""

    def on_cached(self, blocks: Sequence[Any]) -> None:
        """Blocks just registered as prefix-cache entries."""

    def on_reset(self) -> None:
        """The prefix cache was reset."""


_EVENTS = ("on_freed", "on_evicted", "on_allocated", "on_cached", "on_reset")


class BlockEvents:
    """The observer of one pool; obtain it with :meth:`of`, never build a second one for the same pool.

    Not thread-safe by design: vLLM's scheduler and its block pool live on the engine-core thread.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._listeners: dict[str, list[Callable[..., None]]] = {name: [] for name in _EVENTS}
        self._install()

    @classmethod
    def of(cls, pool: Any) -> BlockEvents:
        """The pool's observer, giving the pool its observing class on first use."""
        found = type(pool).__dict__.get("_pccguard_events")
        if isinstance(found, cls):
            return found
        return cls(pool)

    def subscribe(self, subscriber: BlockSubscriber) -> None:
        """Deliver every later event ``subscriber`` overrides to it, after those subscribed before."""
        for name in _EVENTS:
            if getattr(type(subscriber), name) is not getattr(BlockSubscriber, name):
                self._listeners[name].append(getattr(subscriber, name))

    def _install(self) -> None:
        base = type(self.pool)
        free_blocks = base.free_blocks
        evict_blocks = base.evict_blocks
        get_new_blocks = base.get_new_blocks
        cache_full = base.cache_full_blocks
        cache_partial = base.cache_partial_block
        reset = base.reset_prefix_cache
        freed = self._listeners["on_freed"]
        evicted = self._listeners["on_evicted"]
        allocated = self._listeners["on_allocated"]
        cached = self._listeners["on_cached"]
        resets = self._listeners["on_reset"]

        def free_wrapper(pool: Any, ordered_blocks: Iterable[Any]) -> None:
            blocks = list(ordered_blocks)
            free_blocks(pool, blocks)
            for listener in freed:
                listener(blocks)

        def evict_wrapper(pool: Any, block_ids: set[int]) -> None:
            evict_blocks(pool, block_ids)
            for listener in evicted:
                listener(block_ids)

        def get_wrapper(pool: Any, num_blocks: int) -> list[Any]:
            blocks: list[Any] = get_new_blocks(pool, num_blocks)
            for listener in allocated:
                listener(blocks)
            return blocks

        def full_wrapper(
            pool: Any,
            request: Any,
            blocks: list[Any],
            num_cached_blocks: int,
            num_full_blocks: int,
            *args: Any,
            **kw: Any,
        ) -> None:
            cache_full(pool, request, blocks, num_cached_blocks, num_full_blocks, *args, **kw)
            if num_full_blocks > num_cached_blocks:
                new = blocks[num_cached_blocks:num_full_blocks]
                for listener in cached:
                    listener(new)

        def partial_wrapper(pool: Any, request: Any, block: Any, *args: Any, **kw: Any) -> Any:
            out = cache_partial(pool, request, block, *args, **kw)
            for listener in cached:
                listener((block,))
            return out

        def reset_wrapper(pool: Any) -> bool:
            ok = bool(reset(pool))
            if ok:
                for listener in resets:
                    listener()
            return ok

        methods: dict[str, Callable[..., Any]] = {
            "free_blocks": free_wrapper,
            "evict_blocks": evict_wrapper,
            "get_new_blocks": get_wrapper,
            "cache_full_blocks": full_wrapper,
            "cache_partial_block": partial_wrapper,
            "reset_prefix_cache": reset_wrapper,
        }
        for name, method in methods.items():
            functools.update_wrapper(method, getattr(base, name))
        observing = type(
            base.__name__, (base,), {**methods, "_pccguard_events": self, "__module__": __name__}
        )
        self.pool.__class__ = observing
