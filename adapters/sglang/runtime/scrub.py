"""``scrub_freed_kv``: zero freed KV slots and pages in the K and V buffers before reuse.

SGLang 0.5.23 returns slots to the free list without clearing them, so the next
request's allocation can hold another tenant's K/V. The hooks sit at the points
where slots actually re-enter a free list:

* token allocator (page size 1): ``TokenToKVPoolAllocator.free`` when no free
  group is open; deferred frees (``free_group``) come back through ``free`` at
  ``free_group_end``, and ``need_sort`` frees are zeroed before they reach
  ``release_pages``;
* paged allocator: ``PagedTokenToKVPoolAllocator._release_page_ids``, the one
  place every page (plain, segment, deferred, staged) is released; whole pages
  are zeroed;
* ``clear()`` of both (``flush_cache``, resize): the whole pool is zeroed, since
  ``clear`` frees every slot at once without going through ``free``.

Zeroing is unconditional once the plugin is loaded and no decision disabled it:
scrubbing is always safe, so an undecided process errs on the side of clearing.
"""

from __future__ import annotations

from typing import Any

import torch

from pccguard.enforcement.audit import AuditKind

from . import targets
from .state import STATE

MITIGATION = "scrub_freed_kv"
BUFFER_ATTRS = ("k_buffer", "v_buffer", "kv_buffer")


def _enabled() -> bool:
    current = STATE.current
    return current is None or current.active(MITIGATION)


def kv_buffers(pool: Any) -> list[torch.Tensor]:
    """Every per-layer K, V (or fused MLA KV) buffer of a device KV pool."""
    found: list[torch.Tensor] = []
    for attr in BUFFER_ATTRS:
        value = getattr(pool, attr, None)
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(t for t in value if isinstance(t, torch.Tensor))
    return found


def supports_pool(pool: Any) -> bool:
    return bool(kv_buffers(pool))


def zero_slots(pool: Any, slots: torch.Tensor) -> int:
    """Zero rows ``slots`` in every layer's K and V buffer; returns the number of slots."""
    if slots is None or slots.numel() == 0:
        return 0
    for buffer in kv_buffers(pool):
        index = slots.to(device=buffer.device, dtype=torch.int64)
        buffer.index_fill_(0, index, 0)
    return int(slots.numel())


def zero_all(pool: Any) -> int:
    rows = 0
    for buffer in kv_buffers(pool):
        buffer.zero_()
        rows = max(rows, int(buffer.shape[0]))
    return rows


def _before_token_free(allocator: Any, free_index: torch.Tensor, *args: Any, **kwargs: Any) -> None:
    # A free group defers the release; the grouped indices come back through free().
    if getattr(allocator, "free_group", None) is not None or not _enabled():
        return None
    n = zero_slots(allocator._kvcache, free_index)
    STATE.count(AuditKind.KV_SCRUBBED, MITIGATION, n, "slots")
    return None


def page_slots(page_ids: torch.Tensor, page_size: int) -> torch.Tensor:
    """Token slot indices of whole pages."""
    offsets = torch.arange(page_size, device=page_ids.device, dtype=torch.int64)
    return (page_ids.to(torch.int64).unsqueeze(1) * page_size + offsets).reshape(-1)


def _before_release_pages(allocator: Any, *page_ids: torch.Tensor, **kwargs: Any) -> None:
    if not _enabled():
        return None
    total = 0
    for ids in page_ids:
        if ids is not None and ids.numel():
            total += zero_slots(allocator._kvcache, page_slots(ids, allocator.page_size))
    STATE.count(AuditKind.KV_SCRUBBED, MITIGATION, total, "slots")
    return None


def _after_clear(result: Any, allocator: Any, *args: Any, **kwargs: Any) -> None:
    pool = getattr(allocator, "_kvcache", None)
    if pool is None or not _enabled():
        return None
    n = zero_all(pool)
    STATE.count(AuditKind.KV_SCRUBBED, MITIGATION, n, "slots", reason="pool_cleared")
    return None


#: Allocator classes whose frees these hooks cover; any other kind refuses the start.
SUPPORTED_ALLOCATORS = ("TokenToKVPoolAllocator", "PagedTokenToKVPoolAllocator")

HOOKS = [
    (targets.TOKEN_ALLOCATOR_FREE, _before_token_free, "BEFORE"),
    (targets.PAGED_ALLOCATOR_RELEASE, _before_release_pages, "BEFORE"),
    (targets.TOKEN_ALLOCATOR_CLEAR, _after_clear, "AFTER"),
    (targets.PAGED_ALLOCATOR_CLEAR, _after_clear, "AFTER"),
]
