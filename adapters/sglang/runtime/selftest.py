"""SGLang's start-time self-tests in the scheduler: each installed mitigation proven on the live scheduler.

They run in every scheduler process when ``Scheduler.__init__`` has built the
model worker, the KV pool and its allocator, the radix tree and the schedule
policy, and before the scheduler reports ready to the launcher -- so before
any request can reach it. Each check drives the live objects:

* ``scrub_freed_kv`` -- slots taken from the scheduler's own
  ``token_to_kv_pool_allocator``; a random canary written into them in every
  K and V buffer of its KV pool, on the pool's device, and read back (the
  positive control); the slots freed by ``free_kv_row_segments``, the call a
  finished request's KV row takes (the allocator's ``free_segment``, where the
  scrubber sits); every buffer must read back zeros and the allocator must
  hold as many free slots as before;
* ``tenant_cache_salt`` -- one prompt through the hooks this process
  registered on ``TokenizerManager.generate_request`` (the ingress salt) and
  ``Scheduler.handle_generate_request`` (the salt gate), as the request path
  runs them: two tenants get different radix keys and share nothing in a
  ``RadixCache``, one tenant twice gets the same key and its whole prefix, and
  a client-chosen ``cache_salt`` never reaches the tree;
* ``prefix_cache_ttl`` -- an entry with a canary in its KV inserted into the
  live tree; still there when the expiry runs before its TTL, gone (and its
  KV zeroed, its slots back in the allocator) when it runs with a clock past it;
* ``encrypt_offload`` -- a canary page through the live HiCache storage
  backend: it reads back, its bytes at rest hold no plaintext, a flipped bit
  is refused;
* ``cache_agnostic_scheduling`` -- the live ``SchedulePolicy`` is
  cache-agnostic and refuses a cache-aware policy asked of it;
* ``per_tenant_spec_corpus`` -- the live NGRAM worker's corpus drafts tenant
  A's text for A and nothing of it for tenant B;
* ``server_side_priority`` -- a client's priority does not survive the ingress.

The HTTP server's mitigations are proven in its own process
(:mod:`.selftest_http`). Every check also runs on an engine without pccguard:
that is the control, which reports the residue instead of refusing.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from pccguard.enforcement.config import MitigationConfig
from pccguard.enforcement.selftest import (
    Check,
    Evidence,
    SelfTestFailed,
    SelfTestOutcome,
    process_age_seconds,
    require_verified,
)
from pccguard.enforcement.tenancy.identity import tenant_scope
from pccguard.enforcement.tenancy.salts import isolated_salt
from pccguard.errors import EnforcementError

from . import targets, ttl
from .hooks import registered
from .state import STATE

logger = logging.getLogger("pccguard.sglang")

ENGINE = "sglang"
#: Proven in the HTTP server process, where they are installed (:mod:`.selftest_http`).
HTTP_MITIGATIONS = frozenset({"close_privileged_endpoints", "disable:runtime_updates", "allowlist_logs"})
#: The key under which a scheduler reports its self-tests in its ready handshake (``get_init_info``).
INIT_INFO_KEY = "pccguard_selftests"
#: Slots each KV check writes its canary into (rounded up to whole pages).
CANARY_SLOTS = 4
#: Attributes of SGLang's device KV pools that hold per-layer K, V or fused MLA KV buffers.
KV_ATTRS = ("k_buffer", "v_buffer", "kv_buffer")


def scheduler_checks(scheduler: Any) -> dict[str, Check]:
    """The checks of this scheduler's mitigations, bound to it (with or without pccguard installed)."""

    def bind(fn: Callable[[Any], Evidence]) -> Check:
        return lambda: fn(scheduler)

    return {
        "scrub_freed_kv": bind(check_scrub),
        "tenant_cache_salt": bind(check_salts),
        "prefix_cache_ttl": bind(check_ttl),
        "encrypt_offload": bind(check_offload),
        "cache_agnostic_scheduling": bind(check_scheduling),
        "per_tenant_spec_corpus": bind(check_spec_corpus),
        "server_side_priority": bind(check_priority),
    }


def engine_start_seconds(scheduler: Any | None = None) -> float | None:
    """How long this process has been starting the engine: its age, or the scheduler's own start mark.

    The process age counts what SGLang's start costs before ``Scheduler.__init__``
    (spawn, imports, platform set-up); the start mark is the fallback.
    """
    age = process_age_seconds()
    if age is not None:
        return age
    began = getattr(scheduler, "scheduler_startup_begin", None)  # no process age: the scheduler's own mark
    return time.perf_counter() - float(began) if began is not None else None


def scheduler_init_seconds(scheduler: Any) -> float | None:
    """How long ``Scheduler.__init__`` took (SGLang's own start mark)."""
    began = getattr(scheduler, "scheduler_startup_begin", None)
    return time.perf_counter() - float(began) if began is not None else None


def prove_scheduler(scheduler: Any) -> SelfTestOutcome | None:
    """Prove every mitigation this scheduler installed, or refuse its start (``EnforcementError``)."""
    enforcement = STATE.current
    if enforcement is None:
        return None
    installed = sorted(enforcement.installed - HTTP_MITIGATIONS)
    started = engine_start_seconds(scheduler)
    try:
        outcome = require_verified(
            ENGINE, scheduler_checks(scheduler), installed, STATE.audit, engine_start_seconds=started
        )
    except EnforcementError as exc:
        logger.error("%s", exc)
        raise
    STATE.selftests, STATE.engine_start_seconds = outcome, started
    STATE.scheduler_init_seconds = scheduler_init_seconds(scheduler)
    logger.info(
        "pccguard: %s (scheduler process start %.2f s, Scheduler.__init__ %.2f s)",
        outcome.summary(),
        started or 0.0,
        STATE.scheduler_init_seconds or 0.0,
    )
    return outcome


def outcome_report(outcome: SelfTestOutcome) -> dict[str, Any]:
    """This process's self-tests as plain data, for the ready handshake (no data, no secrets)."""
    return {
        "records": [r.model_dump(mode="json") for r in outcome.records],
        "seconds": outcome.seconds,
        "budget": outcome.budget,
        "engine_start_seconds": STATE.engine_start_seconds,
        "scheduler_init_seconds": STATE.scheduler_init_seconds,
        "summary": outcome.summary(),
    }


# ---------------------------------------------------------------------- KV canaries


def kv_tensors(pool: Any) -> list[tuple[str, torch.Tensor]]:
    """Every per-layer K and V (or fused KV) buffer of a device KV pool, named.

    Read from the pool itself, not from the scrubber's list, so a zeroer that
    leaves a buffer out is caught; a pool with fewer buffers than layers is refused.
    """
    found: list[tuple[str, torch.Tensor]] = []
    layers = getattr(pool, "layer_num", None)
    for attr in KV_ATTRS:
        value = getattr(pool, attr, None)
        if isinstance(value, torch.Tensor):
            found.append((attr, value))
        elif isinstance(value, (list, tuple)):
            tensors = [t for t in value if isinstance(t, torch.Tensor)]
            if layers is not None and len(tensors) != int(layers):
                raise SelfTestFailed(
                    f"KV pool {type(pool).__name__} holds {len(tensors)} {attr}s for {layers} layers"
                )
            found.extend((f"{attr}[{i}]", t) for i, t in enumerate(tensors))
    if not found:
        raise SelfTestFailed(f"KV pool {type(pool).__name__} has no K/V buffer to test")
    return found


def _rows(tensor: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    raw = tensor.view(torch.uint8)
    return raw, slots.to(device=tensor.device, dtype=torch.int64)


def write_canary(tensors: list[tuple[str, torch.Tensor]], slots: torch.Tensor) -> list[torch.Tensor]:
    """Random non-zero bytes into rows ``slots`` of every buffer, on its device; returns what was written."""
    generator = torch.Generator().manual_seed(secrets.randbits(63))
    written: list[torch.Tensor] = []
    for _name, tensor in tensors:
        raw, index = _rows(tensor, slots)
        canary = torch.randint(
            1, 256, (index.numel(), *raw.shape[1:]), generator=generator, dtype=torch.uint8
        )
        canary = canary.to(raw.device)
        raw[index] = canary
        written.append(canary)
    return written


def require_canary(
    tensors: list[tuple[str, torch.Tensor]], slots: torch.Tensor, canaries: list[torch.Tensor]
) -> None:
    """The positive control: each buffer reads back exactly the canary written into it."""
    for (name, tensor), canary in zip(tensors, canaries, strict=True):
        raw, index = _rows(tensor, slots)
        if not torch.equal(raw[index], canary):
            raise SelfTestFailed(
                f"the canary written into KV buffer {name} on {tensor.device} could not be read back"
            )


def require_zeros(tensors: list[tuple[str, torch.Tensor]], slots: torch.Tensor, when: str) -> None:
    """Fail naming the first buffer in which any of ``slots`` still holds a non-zero byte."""
    for name, tensor in tensors:
        raw, index = _rows(tensor, slots)
        left = int(raw[index].reshape(index.numel(), -1).ne(0).any(dim=1).sum().item())
        if left:
            raise SelfTestFailed(
                f"canary still in {left} of {index.numel()} freed slots of KV buffer {name} "
                f"on {tensor.device} {when}"
            )


def _slot_count(allocator: Any) -> int:
    page = max(1, int(allocator.page_size))
    return page * -(-CANARY_SLOTS // page)


def _take_slots(allocator: Any) -> torch.Tensor:
    slots = allocator.alloc(_slot_count(allocator))
    if slots is None:
        raise SelfTestFailed("the KV allocator had no free slots to test with")
    return slots


def _device(tensors: list[tuple[str, torch.Tensor]]) -> str:
    return str(tensors[0][1].device)


# ---------------------------------------------------------------------- the checks


def check_scrub(scheduler: Any) -> Evidence:
    from sglang.srt.mem_cache.common import free_kv_row_segments

    allocator = scheduler.token_to_kv_pool_allocator
    tensors = kv_tensors(allocator.get_kvcache())
    free_before = int(allocator.available_size())
    slots = _take_slots(allocator)
    try:
        canaries = write_canary(tensors, slots)
        require_canary(tensors, slots, canaries)
    finally:
        # What a finished request's KV row takes back to the allocator (``release_kv_cache``).
        free_kv_row_segments(allocator, [(slots, 0)], swa_evicted_seqlen=0)
    free_after = int(allocator.available_size())
    if free_after != free_before:
        raise SelfTestFailed(
            f"the allocator holds {free_before - free_after} fewer free slots after the test"
        )
    require_zeros(tensors, slots, "after the free path ran")
    return Evidence(
        checked=(
            f"canary written into {slots.numel()} slots of every K/V buffer of {type(allocator.get_kvcache()).__name__} "
            f"and read back; freed through {type(allocator).__name__} by free_kv_row_segments; read back as zeros"
        ),
        blocks=int(slots.numel()),
        layers=len(tensors),
        ranks=1,
        device=_device(tensors),
    )


def _generate_input(tokens: list[int], client_salt: str | None, priority: int | None = None) -> Any:
    from sglang.srt.managers.io_struct import GenerateReqInput

    return GenerateReqInput(
        input_ids=list(tokens),
        sampling_params={"max_new_tokens": 1},
        cache_salt=client_salt,
        priority=priority,
        rid=f"pccguard-selftest-{secrets.token_hex(8)}",
    )


def _tokenized(obj: Any) -> Any:
    """The message the tokenizer manager sends the scheduler for ``obj`` (the fields the salt gate reads)."""
    from sglang.srt.managers.io_struct import TokenizedGenerateReqInput
    from sglang.srt.sampling.sampling_params import SamplingParams

    return TokenizedGenerateReqInput(
        input_text=None,
        input_ids=array("q", obj.input_ids),
        input_embeds=None,
        mm_inputs=None,
        token_type_ids=None,
        sampling_params=SamplingParams(max_new_tokens=1),
        return_logprob=False,
        logprob_start_len=-1,
        top_logprobs_num=0,
        token_ids_logprob=None,
        stream=False,
        rid=obj.rid,
        cache_salt=obj.cache_salt,
        priority=obj.priority,
    )


def _ingress(obj: Any, tenant: str) -> None:
    """Run the hooks registered on ``TokenizerManager.generate_request`` with ``tenant`` bound, as the ingress does."""
    with tenant_scope(tenant):
        for hook in registered(targets.TOKENIZER_GENERATE):
            hook(None, obj)


def _salt_reaching_the_tree(scheduler: Any, tokens: list[int], tenant: str, client_salt: str) -> str | None:
    obj = _generate_input(tokens, client_salt)
    _ingress(obj, tenant)
    message = _tokenized(obj)
    for hook in registered(targets.SCHEDULER_HANDLE_GENERATE):
        hook(scheduler, message)
    salt: str | None = message.cache_salt or None  # ``Req`` keeps ``cache_salt or None``
    return salt


def check_salts(scheduler: Any) -> Evidence:
    from sglang.srt.mem_cache.base_prefix_cache import InsertParams, MatchPrefixParams
    from sglang.srt.mem_cache.radix_cache import RadixCache, RadixKey

    page = max(1, int(getattr(scheduler, "page_size", 1) or 1))
    tokens = [7 + secrets.randbelow(500) for _ in range(2 * page * max(1, -(-4 // page)))]
    tenants = [f"pccguard-selftest-{secrets.token_hex(6)}" for _ in range(2)]
    chosen, other = (f"client-chosen-{secrets.token_hex(6)}" for _ in range(2))
    a = _salt_reaching_the_tree(scheduler, tokens, tenants[0], chosen)
    b = _salt_reaching_the_tree(scheduler, tokens, tenants[1], chosen)
    a_again = _salt_reaching_the_tree(scheduler, tokens, tenants[0], other)

    def key(salt: str | None) -> Any:
        return RadixKey(array("q", tokens), None, cache_salt=salt)

    tree = RadixCache.create_simulated(page_size=page)
    tree.insert(InsertParams(key=key(a)))

    def hit(salt: str | None) -> int:
        return int(tree.match_prefix(MatchPrefixParams(key=key(salt))).device_prefix_len)

    if key(a).child_key(page) == key(b).child_key(page) or hit(b):
        raise SelfTestFailed(
            f"one prompt under two tenants gave the same radix-tree key ({hit(b)} of {len(tokens)} tokens "
            "matched across tenants): the prefix cache is shared"
        )
    if key(a).child_key(page) != key(a_again).child_key(page) or hit(a_again) != len(tokens):
        raise SelfTestFailed(
            "one tenant's prompt gave two different radix-tree keys: its own prefix would never hit"
        )
    if {a, b, a_again} & {chosen, other}:
        raise SelfTestFailed("a client-chosen cache_salt reached the radix tree as given")
    return Evidence(
        checked=(
            "one prompt through the registered generate_request and handle_generate_request hooks: two tenants' "
            f"radix keys differ and a RadixCache matched 0 of {len(tokens)} tokens across them, one tenant's "
            "twice the same key and every token; a client-chosen cache_salt was replaced"
        ),
    )


def check_priority(scheduler: Any) -> Evidence:
    obj = _generate_input([1, 2, 3], None, priority=7)
    _ingress(obj, f"pccguard-selftest-{secrets.token_hex(6)}")
    if obj.priority is not None:
        raise SelfTestFailed(f"a client priority of 7 reached the scheduler as {obj.priority}")
    return Evidence(
        checked="a request with client priority 7 left the ingress hooks with the server's default"
    )


def _insert_probe(tree: Any, tokens: list[int], salt: str, slots: torch.Tensor) -> Callable[[], int]:
    """Insert ``tokens`` (KV in ``slots``) under a salt no request has; returns a lookup of its cached length."""
    from sglang.srt.mem_cache.base_prefix_cache import InsertParams, MatchPrefixParams
    from sglang.srt.mem_cache.radix_cache import RadixKey

    tree.insert(InsertParams(key=RadixKey(array("q", tokens), None, cache_salt=salt), value=slots.clone()))

    def cached() -> int:
        key = RadixKey(array("q", tokens), None, cache_salt=salt)
        return int(tree.match_prefix(MatchPrefixParams(key=key)).device_prefix_len)

    return cached


def check_ttl(scheduler: Any) -> Evidence:
    tree = scheduler.tree_cache
    allocator = scheduler.token_to_kv_pool_allocator
    seconds = ttl.ttl_seconds() or float(MitigationConfig().prefix_cache_ttl_seconds or 300.0)
    tensors = kv_tensors(allocator.get_kvcache())
    free_before = int(allocator.available_size())
    slots = _take_slots(allocator)
    canaries = write_canary(tensors, slots)
    tokens = [7 + secrets.randbelow(500) for _ in range(int(slots.numel()))]
    cached = _insert_probe(tree, tokens, isolated_salt(), slots)
    key = id(scheduler)
    saved = ttl._NEXT_TICK.pop(key, None)
    try:
        now = time.monotonic()
        ttl.tick(scheduler, clock=lambda: now)  # the TTL has not passed: the entry stays
        if cached() <= 0:
            raise SelfTestFailed("the test entry was gone from the tree before its TTL had passed")
        require_canary(tensors, slots, canaries)
        ttl._NEXT_TICK.pop(key, None)
        later = time.monotonic() + seconds + 1.0
        ttl.tick(scheduler, clock=lambda: later)
        left = cached()
        if left:
            raise SelfTestFailed(
                f"{left} tokens of a tree entry older than the TTL ({seconds:g} s) outlived the expiry"
            )
    finally:
        ttl._NEXT_TICK.pop(key, None)
        if saved is not None:
            ttl._NEXT_TICK[key] = saved
    if int(allocator.available_size()) != free_before:
        raise SelfTestFailed("the slots of an expired tree entry were not returned to the allocator")
    if STATE.active("scrub_freed_kv"):
        require_zeros(tensors, slots, "after the entry expired")
    return Evidence(
        checked=(
            f"with a clock past the TTL, an entry of {type(tree).__name__} holding a canary (present and "
            "readable before the TTL) was expired by the scheduler's expiry, its slots returned and read back as zeros"
        ),
        blocks=int(slots.numel()),
        layers=len(tensors),
        ranks=1,
        device=_device(tensors),
    )


def check_scheduling(scheduler: Any) -> Evidence:
    from sglang.srt.managers.schedule_policy import CacheAgnosticPolicy, CacheAwarePolicy

    policy = scheduler.policy
    if not isinstance(policy.policy, CacheAgnosticPolicy):
        raise SelfTestFailed(
            f"the scheduler's live policy is {policy.policy.value}, which orders by cache matches"
        )
    asked = policy._validate_and_adjust_policy(CacheAwarePolicy.LPM.value, scheduler.tree_cache)
    if not isinstance(asked, CacheAgnosticPolicy):
        raise SelfTestFailed(f"the live SchedulePolicy accepted the cache-aware policy {asked.value}")
    return Evidence(
        checked=f"the scheduler's live policy is {policy.policy.value}; asked for lpm, SchedulePolicy gave {asked.value}"
    )


def storage_backend(scheduler: Any) -> Any:
    """The live HiCache L3 backend of this scheduler (through SGLang's test failure injector, if any)."""
    controller = getattr(scheduler.tree_cache, "cache_controller", None)
    backend = getattr(controller, "storage_backend", None)
    for _ in range(4):
        inner = getattr(backend, "_backend", None)
        if inner is None:
            break
        backend = inner
    if backend is None:
        raise SelfTestFailed("the scheduler has no HiCache storage backend")
    return backend


def check_offload(scheduler: Any) -> Evidence:
    return prove_offload(storage_backend(scheduler))


def _canary_page() -> tuple[bytes, tuple[int, ...], bytes]:
    ids = tuple(1000 + secrets.randbelow(2**20) for _ in range(8))
    marker = secrets.token_bytes(32)
    body = (
        marker
        + b"".join(i.to_bytes(4, "little") for i in ids)
        + b"".join(i.to_bytes(8, "little") for i in ids)
    )
    return body + secrets.token_bytes(512 - len(body)), ids, marker


def _plaintext_at_rest(path: Path, ids: tuple[int, ...], marker: bytes) -> list[str]:
    """The shapes of the canary found in the stored file (exact bytes, token ids as int32/int64/text)."""
    from pccguard.scan.canaries import Canary, Pattern, patterns
    from pccguard.scan.search import ScanResult, scan_file

    shapes = patterns([Canary(label="selftest", text=None, token_ids=(ids,))])
    shapes.append(Pattern("selftest", "bytes", needle=marker, max_length=len(marker)))
    result = ScanResult()
    scan_file(path, shapes, result)
    if result.errors:
        raise SelfTestFailed("the stored test page could not be read back from disk")
    return sorted({f.encoding for f in result.findings})


def prove_offload(backend: Any) -> Evidence:
    """A canary page round-trips through ``backend``, is sealed at rest, and is refused once tampered with.

    Runs on any file-backed backend (SGLang's ``HiCacheFile`` is the control: its page is plaintext at rest).
    """
    from .hicache import EncryptedHiCacheStorage

    if not isinstance(getattr(backend, "file_path", None), str):
        raise SelfTestFailed(
            f"the HiCache storage backend {type(backend).__name__} keeps no files to inspect"
        )
    body, ids, marker = _canary_page()
    page = torch.frombuffer(bytearray(body), dtype=torch.uint8)
    key = f"pccguard-selftest-{secrets.token_hex(8)}"
    suffixed = backend._get_suffixed_key(key)
    path = Path(backend.file_path) / f"{suffixed}.bin"
    try:
        if not backend.set(key, page) or not path.is_file():
            raise SelfTestFailed("the backend did not store the test page")
        found = _plaintext_at_rest(path, ids, marker)
        if found:
            raise SelfTestFailed(f"the stored test page holds its canary in plaintext ({', '.join(found)})")
        back = torch.zeros_like(page)
        if backend.get(key, back) is None or not torch.equal(back, page):
            raise SelfTestFailed("the test page did not read back as written")
        sealed = bytearray(path.read_bytes())
        sealed[len(sealed) // 2] ^= 0x01
        path.write_bytes(bytes(sealed))
        if backend.get(key, torch.zeros_like(page)) is not None:
            raise SelfTestFailed("a stored page with one flipped bit was served")
    finally:
        _forget_page(backend, suffixed, path)
    if not isinstance(backend, EncryptedHiCacheStorage):  # held up, but not the backend the policy counted on
        raise SelfTestFailed(f"the live HiCache storage backend is {type(backend).__name__}, not pccguard's")
    return Evidence(
        checked=(
            f"a {len(body)}-byte canary page through {type(backend).__name__}.set/get read back as written, "
            "held no canary bytes or token ids at rest, and was refused with one bit flipped"
        ),
        blocks=1,
    )


def _forget_page(backend: Any, suffixed: str, path: Path) -> None:
    if path.exists():
        os.remove(path)
    backend._evictor.abort(suffixed)  # drops its size from the evictor's account
    if backend.metadata_cache is not None:
        backend.metadata_cache.remove(suffixed)


def ngram_corpus(scheduler: Any) -> Any:
    corpus = getattr(getattr(scheduler, "draft_worker", None), "ngram_corpus", None)
    if corpus is None:
        raise SelfTestFailed("the scheduler has no NGRAM corpus")
    return corpus


def check_spec_corpus(scheduler: Any) -> Evidence:
    return prove_corpus_partitioned(ngram_corpus(scheduler))


def prove_corpus_partitioned(corpus: Any) -> Evidence:
    """Tenant A's continuation is drafted for A and for nobody else."""
    context = [11 + secrets.randbelow(100) for _ in range(3)]
    secret = [200 + secrets.randbelow(700) for _ in range(6)]
    salts = [isolated_salt(), isolated_salt()]
    rids = [f"pccguard-selftest-{secrets.token_hex(6)}" for _ in range(3)]
    bind = getattr(corpus, "bind", None)

    def drafts(rid: str, salt: str) -> list[int]:
        if bind is not None:
            bind([SimpleNamespace(rid=rid, cache_salt=salt)])
        tokens, _mask = corpus.batch_get([rid], [[*context, secret[0]]], [len(context) + 1])
        return [int(t) for t in list(tokens)[1:]]

    try:
        for _ in range(3):
            if bind is not None:
                bind([SimpleNamespace(rid=rids[0], cache_salt=salts[0])])
            corpus.batch_put([[*context, *secret]])
        corpus.synchronize()
        to_b = drafts(rids[1], salts[1])
        to_a = drafts(rids[2], salts[0])
    finally:
        corpus.erase_match_state(rids)
        drop = getattr(corpus, "drop", None)
        if drop is not None:
            drop(salts)
    if any(t in secret[1:] for t in to_b):
        raise SelfTestFailed("tenant B was drafted tenant A's continuation from the NGRAM corpus")
    if not any(t in secret[1:] for t in to_a):
        raise SelfTestFailed("tenant A was not drafted its own continuation: the corpus test proves nothing")
    return Evidence(
        checked=f"{type(corpus).__name__}: a continuation put under tenant A was drafted for A and not for tenant B"
    )


# ---------------------------------------------------------------------- hooks


def _after_scheduler_init(result: Any, scheduler: Any, *args: Any, **kwargs: Any) -> None:
    prove_scheduler(scheduler)
    return None


def _after_init_info(result: Any, scheduler: Any, *args: Any, **kwargs: Any) -> Any:
    outcome = STATE.selftests
    if outcome is None or not isinstance(result, dict):
        return None
    return {**result, INIT_INFO_KEY: outcome_report(outcome)}


HOOKS = [
    (targets.SCHEDULER_INIT, _after_scheduler_init, "AFTER"),
    (targets.SCHEDULER_INIT_INFO, _after_init_info, "AFTER"),
]
