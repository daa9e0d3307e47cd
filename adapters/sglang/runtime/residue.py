"""Residue sampling in SGLang's scheduler (see :mod:`pccguard.enforcement.residue`).

Each scheduler process that scrubs freed KV samples its own allocator's free
slots: at most once per interval, when the scheduler picks its next batch or
idles (one clock read otherwise), a few free pages are read in every K and V
buffer of the pool on its device. Found residue stops admission through the
scheduler's own refusal path for a full queue (``_abort_on_queued_limit``):
the request is answered 503 with pccguard's message and never queued.
"""

from __future__ import annotations

from typing import Any

import torch

from pccguard.enforcement.config import PluginConfig
from pccguard.enforcement.residue import REFUSAL, ResidueSampler

from . import targets
from .selftest import kv_tensors
from .state import STATE

#: Each scheduler's sampler by ``id``; ``None`` once it was decided that this scheduler does not sample.
_SAMPLERS: dict[int, ResidueSampler | None] = {}


def sampler_for(scheduler: Any) -> ResidueSampler | None:
    """This scheduler's sampler, built on first use while ``scrub_freed_kv`` is installed (then kept)."""
    key = id(scheduler)
    if key in _SAMPLERS:
        return _SAMPLERS[key]
    if not STATE.active("scrub_freed_kv"):
        return None
    settings = (STATE.current.config if STATE.current is not None else PluginConfig()).mitigations
    found: ResidueSampler | None = None
    if settings.residue_sample_interval_seconds is not None:
        found = ResidueSampler(
            STATE.audit,
            interval_s=settings.residue_sample_interval_seconds,
            blocks=settings.residue_sample_blocks,
            action=settings.residue_on_found,
        )
    _SAMPLERS[key] = found
    return found


def free_pages(allocator: Any) -> torch.Tensor:
    """The page ids the allocator holds free (both of its lists)."""
    return allocator.get_all_free_pages()


def dirty_pages(allocator: Any, pages: list[int]) -> list[int]:
    """Those of ``pages`` in which any K/V buffer still holds a non-zero byte."""
    page = max(1, int(allocator.page_size))
    ids = torch.tensor(pages, dtype=torch.int64)
    slots = (ids[:, None] * page + torch.arange(page)[None, :]).reshape(-1)
    held = torch.zeros(len(pages), dtype=torch.bool)
    for _name, tensor in kv_tensors(allocator.get_kvcache()):
        rows = tensor.view(torch.uint8)[slots.to(tensor.device)]
        held |= rows.reshape(len(pages), -1).ne(0).any(dim=1).cpu()
    return [p for p, h in zip(pages, held.tolist(), strict=True) if h]


def _before_step(scheduler: Any, *args: Any, **kwargs: Any) -> None:
    """Sample when due; between samples one dictionary lookup and one clock read."""
    sampler = sampler_for(scheduler)
    if sampler is None or not sampler.due():
        return None
    allocator = scheduler.token_to_kv_pool_allocator
    sampler.sample(lambda: free_pages(allocator), lambda pages: dirty_pages(allocator, pages))
    return None


def _around_queue_limit(original: Any, scheduler: Any, recv_req: Any, *args: Any, **kwargs: Any) -> Any:
    sampler = _SAMPLERS.get(id(scheduler))
    if sampler is None or sampler.admitting:
        return original(scheduler, recv_req, *args, **kwargs)
    from http import HTTPStatus

    from sglang.srt.managers.scheduler import _make_abort_req

    reason = {"type": "abort", "status_code": HTTPStatus.SERVICE_UNAVAILABLE, "message": REFUSAL}
    scheduler.send_abort_output(_make_abort_req(recv_req, finished_reason=reason), recv_req)
    return True


HOOKS = [
    (targets.SCHEDULER_NEXT_BATCH, _before_step, "BEFORE"),
    (targets.SCHEDULER_ON_IDLE, _before_step, "BEFORE"),
    (targets.SCHEDULER_QUEUE_LIMIT, _around_queue_limit, "AROUND"),
]
