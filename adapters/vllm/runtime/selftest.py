"""vLLM's start-time self-tests: each installed mitigation proven on the engine core that will serve.

They run in the engine-core process once ``EngineCore.__init__`` has built the
executor, the KV cache and pccguard's scheduler, and before the busy loop
takes its first request (``hooks``). Each check drives the real objects:

* ``scrub_freed_kv`` -- a synthetic request takes blocks from the real
  ``KVCacheManager``; a canary is written into those blocks of every KV
  tensor on every rank (``collective_rpc``) and read back (the positive
  control); the request is freed through ``KVCacheManager.free`` (the path a
  finished request takes); the scheduler's own ``new_block_ids_to_zero`` drain
  hands the ids to each worker's ``_zero_block_ids`` (the call a step makes:
  vLLM's Triton ``KVBlockZeroer`` on a GPU, pccguard's ``memset`` on the CPU);
  every block must read back as zeros. With the enclave executor the KV lives
  in the enclave: the enclave must confirm zeroing every queued block;
* ``tenant_cache_salt`` -- one prompt, as ``EngineCoreRequest``s through the
  engine core's real ``preprocess_add_request`` (the salt gate, then vLLM's
  block hasher): two tenants' tokens give different block hashes, one
  tenant's twice the same, and a client-chosen ``cache_salt`` is never used;
* ``prefix_cache_ttl`` -- with an injected clock, a cached prefix (canary in
  its blocks) is still cached before its TTL, and after it is evicted by the
  scheduler's expiry, its blocks queued, zeroed and read back as zeros;
* ``server_side_priority`` -- a request added with a client priority runs at 0;
* ``hybrid_executor`` -- the enclave attests again to a fresh nonce, and the
  host reproduces its measurement;
* ``encrypt_offload`` -- :mod:`.selftest_offload`.

The frontend's mitigations (operator routes, the metrics filter) are proven
in the API server (``middleware``). Every check is also runnable on an engine
without pccguard (:func:`engine_core_checks`), which is the control: it
reports the residue instead of refusing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from pccguard.adapters.vllm.runtime import selftest_worker as worker
from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement.selftest import Check, Evidence, SelfTestFailed, SelfTestOutcome, require_verified

logger = logging.getLogger("vllm.pccguard")

ENGINE = "vllm"
#: Proven in the API server process, where they are installed (``middleware``).
FRONTEND_MITIGATIONS = frozenset(
    {"close_privileged_endpoints", "disable:cache_hit_metrics", "allowlist_logs"}
)
#: Blocks each KV check writes its canary into (fewer when the cache is smaller).
CANARY_BLOCKS = 4


def engine_core_checks(engine_core: Any) -> dict[str, Check]:
    """The checks of ``engine_core``'s mitigations, bound to it (with or without pccguard installed)."""

    def bind(fn: Callable[[Any], Evidence]) -> Check:
        return lambda: fn(engine_core)

    def offload() -> Evidence:
        from pccguard.adapters.vllm.runtime.selftest_offload import check_encrypt_offload

        return check_encrypt_offload(engine_core)

    return {
        "scrub_freed_kv": bind(check_scrub),
        "tenant_cache_salt": bind(check_salts),
        "prefix_cache_ttl": bind(check_ttl),
        "server_side_priority": bind(check_priority),
        "hybrid_executor": bind(check_hybrid),
        "encrypt_offload": offload,
    }


def prove_engine_core(engine_core: Any, engine_start_seconds: float | None) -> SelfTestOutcome | None:
    """Prove every mitigation this engine core installed, or refuse its start (``EnforcementError``)."""
    scheduler = engine_core.scheduler
    plan = getattr(scheduler, "pccguard_plan", None)
    if plan is None:  # not pccguard's scheduler: the plugin is off for this engine
        return None
    installed = [m for m in plan.install if m not in FRONTEND_MITIGATIONS]
    outcome = require_verified(
        ENGINE,
        engine_core_checks(engine_core),
        installed,
        audit_log(),
        engine_start_seconds=engine_start_seconds,
    )
    scheduler.pccguard_selftests = outcome
    logger.info("pccguard: %s (engine start %.1f s)", outcome.summary(), engine_start_seconds or 0.0)
    return outcome


# ---------------------------------------------------------------------- shared steps


def _rpc(engine_core: Any, fn: Callable[..., Any], *args: Any) -> list[Any]:
    return list(engine_core.model_executor.collective_rpc(fn, args=args))


def _enclave(engine_core: Any) -> Any | None:
    """The enclave client when the engine runs on the enclave executor (its KV lives in the enclave)."""
    return getattr(getattr(engine_core.model_executor, "worker", None), "enclave", None)


def _request(engine_core: Any, tokens: list[int], *, hashed: bool, priority: int = 0) -> Any:
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    from pccguard.enforcement.tenancy.salts import isolated_salt

    return Request(
        request_id=f"pccguard-selftest-{secrets.token_hex(8)}",
        prompt_token_ids=tokens,
        sampling_params=SamplingParams(max_tokens=1),
        pooling_params=None,
        cache_salt=isolated_salt(),  # shares nothing with anyone, whatever pccguard installed
        priority=priority,
        block_hasher=engine_core.request_block_hasher if hashed else None,
    )


def _block_size(engine_core: Any) -> int:
    return int(engine_core.vllm_config.cache_config.block_size)


def _block_ids(manager: Any, request: Any) -> list[int]:
    return sorted({int(i) for group in manager.get_block_ids(request.request_id) for i in group})


def _zero_queued(engine_core: Any) -> list[int]:
    """What the scheduler hands the workers to zero at the start of its next step, zeroed now the same way."""
    ids = list(engine_core.scheduler._get_new_block_ids_to_zero() or [])
    enclave = _enclave(engine_core)
    if enclave is not None:
        if ids and int(enclave.zero_blocks(sorted(set(ids)))) != len(set(ids)):
            raise SelfTestFailed("the enclave did not confirm zeroing every queued block")
        return ids
    _rpc(engine_core, worker.run_engine_zeroing, ids)
    return ids


def _read(engine_core: Any, ids: list[int], seed: int) -> list[dict[str, Any]]:
    return _rpc(engine_core, worker.read_state, ids, seed)


def _require_canary(states: list[dict[str, Any]], ids: list[int]) -> None:
    """The positive control: the canary is readable in every named block of every KV tensor on every rank."""
    for state in states:
        if not state["layers"]:
            raise SelfTestFailed(f"rank {state['rank']} has no KV tensor to test")
        for name, found in zip(state["layers"], state["canary"], strict=True):
            if sorted(found) != sorted(ids):
                raise SelfTestFailed(
                    f"the canary written into KV tensor {name} on rank {state['rank']} could not be read back"
                )


def _residue(states: list[dict[str, Any]], ids: list[int], when: str) -> None:
    """Fail naming the first KV tensor where any of ``ids`` still holds data."""
    for state in states:
        for name, canary, data in zip(state["layers"], state["canary"], state["nonzero"], strict=True):
            if data:
                what = "canary" if canary else "data"
                raise SelfTestFailed(
                    f"{what} still in {len(data)} of {len(ids)} freed blocks of KV tensor {name} "
                    f"on rank {state['rank']} {when}"
                )


def _coverage(states: list[dict[str, Any]]) -> tuple[int, int, str]:
    layers = sum(len(s["layers"]) for s in states)
    return layers, len(states), str(states[0]["device"]) if states else "unknown"


# ---------------------------------------------------------------------- the checks


def check_scrub(engine_core: Any) -> Evidence:
    manager = engine_core.scheduler.kv_cache_manager
    size = _block_size(engine_core)
    free = int(manager.block_pool.get_num_free_blocks())
    want = max(1, min(CANARY_BLOCKS, free - 1))
    # One token now and the rest as lookahead slots: whole blocks, none full of computed tokens, so none
    # is cached -- freeing them is the path a finished request's unshared blocks take.
    request = _request(engine_core, [1], hashed=False)
    if manager.allocate_slots(request, 1, num_lookahead_tokens=want * size - 1) is None:
        raise SelfTestFailed("the KV cache manager had no blocks to test with")
    ids = _block_ids(manager, request)
    seed = secrets.randbits(62)
    enclave = _enclave(engine_core)
    if enclave is not None:
        manager.free(request)
        queued = _zero_queued(engine_core)
        missing = sorted(set(ids) - set(queued))
        if missing:
            raise SelfTestFailed(f"{len(missing)} of {len(ids)} freed blocks were never queued for zeroing")
        return Evidence(
            checked=(
                "blocks freed through KVCacheManager.free were queued in new_block_ids_to_zero and the "
                "attested enclave confirmed zeroing each (its KV is not readable from the host)"
            ),
            blocks=len(ids),
            ranks=1,
            device="enclave",
        )
    try:
        _rpc(engine_core, worker.write_canary, ids, seed)
        _require_canary(_read(engine_core, ids, seed), ids)
    finally:
        manager.free(request)
    queued = _zero_queued(engine_core)
    never = len(set(ids) - set(queued))
    states = _read(engine_core, ids, seed)
    _residue(states, ids, "after the engine's zeroing ran" + (f" ({never} never queued)" if never else ""))
    layers, ranks, device = _coverage(states)
    return Evidence(
        checked=(
            "canary written into freed blocks of every KV tensor and read back; freed through "
            "KVCacheManager.free, queued in new_block_ids_to_zero, zeroed by the runner's _zero_block_ids; "
            "read back as zeros"
        ),
        blocks=len(ids),
        layers=layers,
        ranks=ranks,
        device=device,
    )


def _salt_request(tokens: list[int], salt: str | None) -> Any:
    from vllm.sampling_params import SamplingParams
    from vllm.v1.engine import EngineCoreRequest

    return EngineCoreRequest(
        request_id=f"pccguard-selftest-{secrets.token_hex(8)}",
        prompt_token_ids=list(tokens),
        mm_features=None,
        sampling_params=SamplingParams(max_tokens=1),
        pooling_params=None,
        arrival_time=0.0,
        lora_request=None,
        cache_salt=salt,
        data_parallel_rank=None,
    )


def check_salts(engine_core: Any) -> Evidence:
    from vllm.exceptions import VLLMValidationError

    from pccguard.enforcement.tenancy.salts import process_keys

    if engine_core.request_block_hasher is None:
        raise SelfTestFailed("prefix caching is off in the engine core: no block hashes to compare")
    size = _block_size(engine_core)
    tokens = [3 + (i * 7919) % 101 for i in range(2 * size)]
    gate = getattr(engine_core.scheduler, "pccguard_salt_gate", None)
    keys = gate.keys if gate is not None else process_keys()
    tenants = [f"pccguard-selftest-{secrets.token_hex(6)}" for _ in range(2)]

    def hashes(salt: str | None) -> list[Any]:
        built, _ = engine_core.preprocess_add_request(_salt_request(tokens, salt))
        return list(built.block_hashes)

    def salt_of(tenant: str) -> str:
        # What the tenant boundary puts in a request: a token it minted. Without pccguard (the control)
        # nothing mints; a client sends its salt itself.
        salt = keys.tenant_salt(tenant)
        return keys.mint(salt) if gate is not None else salt

    a = hashes(salt_of(tenants[0]))
    a_again = hashes(salt_of(tenants[0]))
    b = hashes(salt_of(tenants[1]))
    if not a or len(a) != 2:
        raise SelfTestFailed(f"a {len(tokens)}-token prompt produced {len(a)} block hashes, expected 2")
    if a != a_again:
        raise SelfTestFailed("one tenant's prompt hashed differently twice: its own prefix would never hit")
    if set(a) & set(b):
        raise SelfTestFailed(
            "one prompt under two tenants gave equal block hashes: the prefix cache is shared"
        )
    chosen = f"client-chosen-{secrets.token_hex(6)}"
    try:
        built, _ = engine_core.preprocess_add_request(_salt_request(tokens, chosen))
    except VLLMValidationError:
        outcome = "refused"
    else:
        if built.cache_salt == chosen:
            raise SelfTestFailed("a client-chosen cache_salt was used as given: clients can join any cache")
        outcome = "replaced"
    return Evidence(
        checked=(
            "one prompt through EngineCore.preprocess_add_request: two tenants' salt tokens gave different "
            f"block hashes, one tenant's twice the same; a client-chosen cache_salt was {outcome}"
        ),
        blocks=len(a),
    )


def check_ttl(engine_core: Any) -> Evidence:
    scheduler = engine_core.scheduler
    manager = scheduler.kv_cache_manager
    pool = manager.block_pool
    ttl = getattr(scheduler, "pccguard_ttl", None)
    if engine_core.request_block_hasher is None:
        raise SelfTestFailed("prefix caching is off in the engine core: nothing to expire")
    size = _block_size(engine_core)
    tokens = [5 + (i * 104729) % 97 for i in range(2 * size)]
    offset = [0.0]
    real = ttl.clock if ttl is not None else None
    if ttl is not None:
        ttl.clock = lambda: real() + offset[0]  # type: ignore[misc]
    seed = secrets.randbits(62)
    enclave = _enclave(engine_core)
    try:
        request = _request(engine_core, tokens, hashed=True)
        if manager.allocate_slots(request, len(tokens)) is None:
            raise SelfTestFailed("the KV cache manager had no blocks to test with")
        ids = _block_ids(manager, request)
        if enclave is None:
            _rpc(engine_core, worker.write_canary, ids, seed)
        manager.free(request)
        cached = [i for i in ids if pool.blocks[i].block_hash is not None]
        if len(cached) != len(ids):
            raise SelfTestFailed("the test prefix was not cached: nothing to expire")
        expire = getattr(scheduler, "_pccguard_expire", None)
        if expire is not None:
            expire()  # before the TTL: the prefix stays (the positive control)
        if any(pool.blocks[i].block_hash is None for i in ids):
            raise SelfTestFailed("the prefix was evicted before its TTL had passed")
        if enclave is None:
            _require_canary(_read(engine_core, ids, seed), ids)
        if ttl is not None:
            offset[0] = float(ttl.ttl) + 1.0
        if expire is not None:
            expire()
        still = [i for i in ids if pool.blocks[i].block_hash is not None]
        if still:
            raise SelfTestFailed(f"{len(still)} of {len(ids)} blocks of a cached prefix outlived its TTL")
        queued = _zero_queued(engine_core)
        if set(ids) - set(queued):
            raise SelfTestFailed("blocks of an expired prefix were never queued for zeroing")
    finally:
        if ttl is not None and real is not None:
            ttl.clock = real
    if enclave is not None:
        return Evidence(
            checked="with an injected clock, a cached prefix stayed before its TTL, was evicted after it, "
            "and the enclave confirmed zeroing its blocks",
            blocks=len(ids),
            ranks=1,
            device="enclave",
        )
    states = _read(engine_core, ids, seed)
    _residue(states, ids, "after the prefix expired")
    layers, ranks, device = _coverage(states)
    return Evidence(
        checked=(
            "with an injected clock, a cached prefix holding a canary stayed before its TTL; after it the "
            "scheduler's expiry evicted it, its blocks were queued, zeroed and read back as zeros"
        ),
        blocks=len(ids),
        layers=layers,
        ranks=ranks,
        device=device,
    )


def check_priority(engine_core: Any) -> Evidence:
    from vllm.v1.request import RequestStatus

    scheduler = engine_core.scheduler
    request = _request(engine_core, [1, 2, 3], hashed=False, priority=7)
    scheduler.add_request(request)
    try:
        if request.priority != 0:
            raise SelfTestFailed(f"a client priority of 7 was kept ({request.priority})")
    finally:
        scheduler.finish_requests(request.request_id, RequestStatus.FINISHED_ABORTED)
    return Evidence(checked="a request added with client priority 7 was scheduled at priority 0")


def check_hybrid(engine_core: Any) -> Evidence:
    enclave = _enclave(engine_core)
    if enclave is None:
        raise SelfTestFailed("the engine does not run on the enclave executor")
    report = enclave.verify()  # fresh nonce; the host reproduces the measurement or this raises
    return Evidence(
        checked=(
            f"the enclave attested to a fresh nonce and the host reproduced its measurement "
            f"(plan {enclave.plan.name}, measurement {str(report.measurement)[:16]})"
        ),
        ranks=1,
        device="enclave",
    )
