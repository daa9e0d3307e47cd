"""Residue sampling in vLLM's engine core (see :mod:`pccguard.enforcement.residue`).

Each engine core that scrubs freed KV samples its own block pool while it
serves. After a step (``EngineCore.post_step``, which both vLLM's busy loop
and its in-process client call once per step) and at most once per interval,
a few blocks are drawn at random from those the pool holds free with nothing
that may legitimately remain in them: no reference, no prefix-cache hash (a
cached block keeps its tenant's KV by design), not the null block, not waiting
in pccguard's scrub queue and, while batches are in flight (vLLM's batch
queue), not handed to the workers for zeroing in the last two steps. Those
blocks are read on every rank's KV tensors (``collective_rpc``, on the
tensors' own device); with the enclave executor the enclave answers for its
own KV. A block found holding data is an audit event and a counter and,
unless the operator chose ``audit``, stops admission: each new request gets
vLLM's own refusal for an engine that takes no new work
(``EngineCoreProc._reject_add_while_paused``) with pccguard's message,
which the API server answers 503.

Between samples a step costs one clock read. Candidates are drawn by
rejection (random ids, each tested against the pool) rather than by listing
the free queue, so a sample costs the same on a pool of a million blocks.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from pccguard.adapters.vllm.runtime import selftest_worker as worker
from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement.residue import REFUSAL, ResidueSampler

logger = logging.getLogger("vllm.pccguard")

#: How many random ids are tried per block wanted before a sample settles for fewer (a full pool).
TRIES_PER_BLOCK = 8
#: The attribute of the engine core that holds its sampler.
ATTR = "pccguard_residue"


def attach(engine_core: Any) -> ResidueSampler | None:
    """Give this engine core its sampler when its plan scrubs freed KV and samples (after the self-tests)."""
    scheduler = engine_core.scheduler
    plan = getattr(scheduler, "pccguard_plan", None)
    settings = getattr(plan, "residue", None)
    if plan is None or not plan.has("scrub_freed_kv") or settings is None:
        return None
    sampler = ResidueSampler(
        audit_log(),
        interval_s=float(settings["interval_s"]),
        blocks=int(settings["blocks"]),
        action=settings["action"],
    )
    setattr(engine_core, ATTR, sampler)
    return sampler


def free_candidates(engine_core: Any, want: int, rng: random.Random) -> list[int]:
    """Up to ``want`` distinct block ids the pool holds free and nothing may legitimately fill.

    Random ids tested one by one against the pool; when that would try as many
    ids as the pool has blocks, the pool is listed instead (every eligible block
    then has its chance).
    """
    scheduler = engine_core.scheduler
    pool = scheduler.kv_cache_manager.block_pool
    blocks = pool.blocks
    scrub = getattr(scheduler, "pccguard_scrub", None)
    # With batches in flight (vLLM's batch queue) the last steps' zeroing may not have run yet.
    in_flight = bool(getattr(engine_core, "batch_queue", None))
    recent = tuple(scheduler.pccguard_recently_zeroed or ()) if in_flight else ()

    def eligible(block: Any) -> bool:
        block_id = int(block.block_id)
        return not (
            block.ref_cnt != 0
            or block.block_hash is not None
            or block.is_null
            or (scrub is not None and scrub.queued(block_id))
            or any(block_id in ids for ids in recent)
        )

    want = min(want, int(pool.get_num_free_blocks()))
    if want <= 0:
        return []
    if want * TRIES_PER_BLOCK >= len(blocks):
        every = [int(b.block_id) for b in blocks if eligible(b)]
        return every if len(every) <= want else rng.sample(every, want)
    chosen: dict[int, None] = {}
    for _ in range(want * TRIES_PER_BLOCK):
        block = blocks[rng.randrange(len(blocks))]
        if int(block.block_id) not in chosen and eligible(block):
            chosen[int(block.block_id)] = None
            if len(chosen) >= want:
                break
    return list(chosen)


def holding(engine_core: Any, ids: list[int]) -> list[int]:
    """Those of ``ids`` holding data on any rank (or, with the enclave executor, in the enclave)."""
    enclave = getattr(getattr(engine_core.model_executor, "worker", None), "enclave", None)
    if enclave is not None:
        return [int(i) for i in enclave.kv_residue(ids)]
    found: set[int] = set()
    for rank in engine_core.model_executor.collective_rpc(worker.holding_blocks, args=(ids,)):
        found.update(int(i) for i in rank)
    return sorted(found)


def sample_now(engine_core: Any, sampler: ResidueSampler) -> Sequence[int]:
    """One sample of this engine core's free blocks; the ids found holding data."""
    candidates = free_candidates(engine_core, sampler.blocks, sampler.rng)
    return sampler.sample(lambda: candidates, lambda ids: holding(engine_core, ids)).dirty


def after_step(engine_core: Any, sampler: ResidueSampler) -> None:
    """The post-step hook's body: sample when due (an error propagates: a reader that fails is no result)."""
    if not sampler.due():
        return
    dirty = sample_now(engine_core, sampler)
    if dirty:
        logger.error(
            "pccguard: %d free KV blocks held data; %s",
            len(dirty),
            "admission stopped" if not sampler.admitting else "reported (residue_on_found: audit)",
        )


def refuses(engine_core: Any) -> bool:
    """True once this engine core's sampler stopped admission."""
    sampler: ResidueSampler | None = getattr(engine_core, ATTR, None)
    return sampler is not None and not sampler.admitting


def refusal_error() -> Any:
    """What a refused request finishes with: retryable (HTTP 503), so a router sends it elsewhere."""
    from vllm.outputs import RequestError

    return RequestError(code="pccguard_residue_found", message=REFUSAL, retryable=True)
