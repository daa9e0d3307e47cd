"""``encrypt_offload``'s self-test: a canary through the live offloading worker of every rank.

Installing ``EncryptedCPUOffloadingSpec`` proves nothing until the worker the
``OffloadingConnector`` actually built has sealed a chunk. The check drives
that worker -- the object the connector's worker side holds on each rank, its
real ``submit_store``/``submit_load`` -- through one round of the offload
path with a canary it has just drawn:

1. the engine core reserves what a store needs through vLLM's own owners:
   KV blocks from the ``KVCacheManager`` (a synthetic request that nothing
   else can be scheduled into) and one host chunk from the scheduler's
   offloading manager (``prepare_store``), so serving state is never
   overwritten;
2. on every rank (``collective_rpc``), the canary -- random text and random
   token ids as 32- and 64-bit integers -- is written into those blocks of
   every KV tensor, read back there (the positive control: the search finds
   it in the clear), and stored through the worker into the host chunk;
3. the bytes at rest in that chunk of every host region tensor are searched
   for the canary with ``pccguard scan``'s own patterns (text in UTF-8 and
   UTF-16, token ids as tensors and printed lists): any shape found is
   plaintext at rest;
4. the chunk is loaded back into the blocks and must equal what was stored;
5. one bit of the stored chunk is flipped and the load must be refused with
   nothing written into the blocks (the store authenticates).

Everything touched is put back as it was: block contents, the host chunk's
bytes (and, for the encrypting store, its store counter), the reservations.
Nothing of the canary leaves the worker's stack: reports name shapes, ranks
and tensors, never bytes.

The same check runs against vLLM's own ``CPUOffloadingWorker`` (pccguard
off): it copies KV pages into its host tensors verbatim, so step 3 finds the
canary -- the control, which is what ``encrypt_offload`` exists to remove.
vLLM builds that worker only on CUDA-alike and XPU platforms.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pccguard.enforcement.selftest import Evidence, SelfTestFailed
from pccguard.scan.canaries import Canary, Pattern, patterns

MITIGATION = "encrypt_offload"
#: Job ids of the self-test's transfers: negative, so they never collide with the connector's (counted up from 0).
STORE_JOB, LOAD_JOB, TAMPERED_JOB = -7_001, -7_002, -7_003
#: Random token ids of the canary: enough that 8 of them never occur by chance, all below 2**31 (int32 too).
CANARY_TOKENS = 8
_TOKEN_LOW, _TOKEN_HIGH = 2**20, 2**31


# ---------------------------------------------------------------------- the engine-core side


def check_encrypt_offload(engine_core: Any) -> Evidence:
    """Prove on every rank that an offloaded chunk is ciphertext at rest, loads back intact and is authenticated."""
    connector: Any = getattr(engine_core.scheduler, "connector", None)
    offload: Any = getattr(connector, "connector_scheduler", None)
    manager: Any = getattr(offload, "manager", None)
    if manager is None or not hasattr(manager, "prepare_store"):
        raise SelfTestFailed("the engine core has no OffloadingConnector: no offload path to test")
    per_chunk = int(offload.config.blocks_per_chunk)
    with _reserved_blocks(engine_core, per_chunk) as block_ids, _reserved_chunk(manager) as chunk_id:
        reports = list(engine_core.model_executor.collective_rpc(probe_offload, args=(block_ids, chunk_id)))
    if not reports:
        raise SelfTestFailed("no worker answered the offload self-test")
    for report in reports:
        if report.get("failed"):
            raise SelfTestFailed(f"rank {report.get('rank', '?')}: {report['failed']}")
    layers = sum(int(r["layers"]) for r in reports)
    return Evidence(
        checked=(
            f"a random canary in {len(block_ids)} KV block(s) of every KV tensor, stored through each rank's "
            "live offloading worker into a reserved host chunk: no shape of it (text, token ids) in the host "
            "region's bytes at rest; loaded back equal; one flipped bit refused with nothing written"
        ),
        blocks=len(block_ids),
        layers=layers,
        ranks=len(reports),
        device=str(reports[0]["device"]),
    )


@contextlib.contextmanager
def _reserved_blocks(engine_core: Any, count: int) -> Iterator[list[int]]:
    """``count`` KV blocks held by a synthetic request through the real ``KVCacheManager`` (freed after)."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    from pccguard.enforcement.tenancy.salts import isolated_salt

    manager = engine_core.scheduler.kv_cache_manager
    size = int(engine_core.vllm_config.cache_config.block_size)
    request = Request(
        request_id=f"pccguard-selftest-offload-{secrets.token_hex(8)}",
        prompt_token_ids=[1],
        sampling_params=SamplingParams(max_tokens=1),
        pooling_params=None,
        cache_salt=isolated_salt(),  # shares nothing with anyone
        block_hasher=None,  # never cached: freeing it returns the blocks as they were taken
    )
    # One token now, the rest as lookahead slots: exactly ``count`` whole blocks.
    if manager.allocate_slots(request, 1, num_lookahead_tokens=count * size - 1) is None:
        raise SelfTestFailed("the KV cache manager had no blocks free for the offload self-test")
    try:
        groups = manager.get_block_ids(request.request_id)
        if len(groups) != 1:
            raise SelfTestFailed(
                f"the engine has {len(groups)} KV-cache groups; the offload self-test covers one"
            )
        ids = [int(i) for i in groups[0]][:count]
        if len(ids) != count:
            raise SelfTestFailed(f"the KV cache manager gave {len(ids)} blocks for a {count}-block chunk")
        yield ids
    finally:
        manager.free(request)


@contextlib.contextmanager
def _reserved_chunk(manager: Any) -> Iterator[int]:
    """One host chunk reserved through the offloading manager's ``prepare_store``; released unstored after."""
    from vllm.v1.kv_offload.base import ReqContext, make_offload_key

    key = make_offload_key(secrets.token_bytes(32), 0)
    context = ReqContext(req_id=f"pccguard-selftest-offload-{secrets.token_hex(8)}")
    with manager.lock:
        out = manager.prepare_store([key], context)
    if out is None or list(out.keys_to_store) != [key]:
        raise SelfTestFailed("the offloading manager had no host chunk free for the self-test")
    try:
        ids = [int(i) for i in out.store_spec.block_ids]
        if len(ids) != 1:
            raise SelfTestFailed(f"the offloading manager gave {len(ids)} host chunks for one key")
        yield ids[0]
    finally:
        with manager.lock:  # a failed store frees the chunk: it never becomes loadable
            manager.complete_store([key], context, success=False)


# ---------------------------------------------------------------------- the worker side


@dataclass
class _Host:
    """One rank's offloading worker, seen as what the check needs: KV views, host regions, and how to save them."""

    worker: Any
    kind: str
    kv: list[Any]  # (num_blocks, page bytes) int8/uint8 views of the paged KV tensors
    regions: list[Any]  # (num_chunks, slot bytes) host tensors: the bytes at rest
    store: Any = None  # the encrypting store (its per-slot store counters are part of a slot's state)

    def slot_bytes(self, chunk: int) -> bytes:
        return b"".join(_raw(region[chunk]) for region in self.regions)

    def save(self, chunk: int) -> tuple[list[Any], dict[int, int | None]]:
        rows = [region[chunk].clone() for region in self.regions]
        versions: dict[int, int | None] = {}
        if self.store is not None:
            versions = {t: self.store._versions.get((t, chunk)) for t in range(len(self.regions))}
        return rows, versions

    def restore(self, chunk: int, saved: tuple[list[Any], dict[int, int | None]]) -> None:
        rows, versions = saved
        for region, row in zip(self.regions, rows, strict=True):
            region[chunk].copy_(row)
        if self.store is not None:
            with self.store._lock:
                for t, version in versions.items():
                    if version is None:
                        self.store._versions.pop((t, chunk), None)
                    else:
                        self.store._versions[(t, chunk)] = version

    def tamper(self, chunk: int) -> None:
        """Flip one bit of what the store wrote: inside the ciphertext for a sealed slot, the page otherwise."""
        row = self.regions[0][chunk]
        at = int(row.numel()) // 2  # past a sealed slot's 12-byte nonce, before its tag: ciphertext
        row[at] = int(row[at]) ^ 0x01  # the lowest bit: in range for uint8 and int8 alike


def _raw(tensor: Any) -> bytes:
    """The bytes of a (CPU or device) tensor."""
    import torch

    return bytes(tensor.detach().contiguous().view(torch.uint8).cpu().numpy().tobytes())


def _host(connector: Any) -> _Host | str:
    """The rank's offloading worker as a :class:`_Host`, or why there is none this check can drive."""
    from vllm.v1.kv_offload.cpu.gpu_worker import CPUOffloadingWorker

    from pccguard.adapters.vllm.runtime.offload import EncryptedOffloadingWorker

    side = getattr(connector, "connector_worker", None)
    worker = getattr(side, "worker", None)
    if worker is None:
        return f"the KV connector {type(connector).__name__} holds no offloading worker"
    if isinstance(worker, EncryptedOffloadingWorker):
        return _Host(
            worker,
            "pccguard's EncryptedOffloadingWorker",
            list(worker.tensors),
            list(worker.store.regions),
            worker.store,
        )
    if isinstance(worker, CPUOffloadingWorker):
        handler = worker._store_handler
        return _Host(
            worker, "vLLM's CPUOffloadingWorker", list(handler.src_tensors), list(handler.dst_tensors)
        )
    return f"the offloading worker {type(worker).__name__} keeps a host store this self-test cannot inspect"


def _busy(connector: Any, host: _Host) -> bool:
    """Whether transfers of the engine's own are queued or in flight (their results must not be taken)."""
    side = connector.connector_worker
    if getattr(side, "_load_jobs", None) or getattr(side, "_unsubmitted_store_jobs", None):
        return True
    handlers = [
        getattr(host.worker, n, None) for n in ("_store_handler", "_load_handler", "_expedited_load_handler")
    ]
    return any(getattr(h, "_transfers", None) for h in handlers)


def _finish(host: _Host, job: int) -> bool:
    """Wait for ``job`` and return its success; results of other jobs go back to the worker's queue."""
    host.worker.wait({job})
    results = list(host.worker.get_finished())
    mine = [r for r in results if r.job_id == job]
    others = [r for r in results if r.job_id != job]
    if others:
        queue = getattr(host.worker, "_finished", None)
        if queue is None:
            raise SelfTestFailed(
                "the offloading worker finished transfers of the engine's own during the self-test"
            )
        with host.worker._lock:
            queue[:0] = others
    if len(mine) != 1:
        raise SelfTestFailed(f"the offloading worker reported {len(mine)} results for one transfer")
    return bool(mine[0].success)


def _rank(connector: Any) -> int:
    try:
        return int(connector.connector_worker.spec.config.parallel.rank)
    except AttributeError:
        return 0


def _found(pats: list[Pattern], data: bytes) -> list[str]:
    """The shapes (encodings) of the canary present in ``data``."""
    hits = []
    for pat in pats:
        if pat.needle is not None:
            present = pat.needle in data
        else:
            present = pat.regex is not None and pat.regex.search(data) is not None
        if present:
            hits.append(pat.encoding)
    return hits


def _canary_page(page: int) -> tuple[bytes, list[Pattern]]:
    """One KV page of fresh random bytes that opens with a fresh canary, and the canary's search patterns."""
    text = f"pccguard-selftest-{secrets.token_hex(16)}"
    ids = tuple(_TOKEN_LOW + secrets.randbelow(_TOKEN_HIGH - _TOKEN_LOW) for _ in range(CANARY_TOKENS))
    pats = patterns([Canary(label="offload-selftest", text=text, token_ids=(ids,))])
    head = b"".join(p.needle for p in pats if p.needle is not None and p.encoding in _PLANTED)
    if len(head) > page:
        raise SelfTestFailed(f"a KV page of {page} bytes is too small to hold the canary")
    return head + secrets.token_bytes(page - len(head)), pats


#: The shapes the canary is written in: text as UTF-8, token ids as 32- and 64-bit integers (what tensors hold).
_PLANTED = ("utf-8", "token-ids-int32", "token-ids-int64")


def _write(host: _Host, block_ids: list[int], pages: list[bytes]) -> None:
    import torch

    for tensor, page in zip(host.kv, pages, strict=True):
        row = torch.frombuffer(bytearray(page), dtype=torch.uint8).view(tensor.dtype).to(tensor.device)
        for block in block_ids:
            tensor[block].copy_(row)


def _read(host: _Host, block_ids: list[int]) -> list[list[bytes]]:
    return [[_raw(tensor[block]) for block in block_ids] for tensor in host.kv]


def probe_offload(_worker: Any, block_ids: list[int], chunk_id: int) -> dict[str, Any]:
    """One rank's part, run in the worker process (``collective_rpc``); returns what it found, never data."""
    from vllm.distributed.kv_transfer import get_kv_transfer_group, has_kv_transfer_group

    if not has_kv_transfer_group():
        return {"rank": 0, "failed": "this worker has no KV connector: nothing is offloaded"}
    connector = get_kv_transfer_group()
    rank = _rank(connector)
    host = _host(connector)
    if isinstance(host, str):
        return {"rank": rank, "failed": host}
    try:
        return {"rank": rank, **_probe(connector, host, block_ids, chunk_id)}
    except SelfTestFailed as exc:
        return {"rank": rank, "failed": str(exc)}


def _probe(connector: Any, host: _Host, block_ids: list[int], chunk_id: int) -> dict[str, Any]:
    from vllm.v1.kv_offload.base import GPULoadStoreSpec
    from vllm.v1.kv_offload.cpu.common import CPULoadStoreSpec

    if not host.kv or len(host.kv) != len(host.regions):
        raise SelfTestFailed("the offloading worker holds no KV tensor to test")
    if any(not 0 <= b < int(t.shape[0]) for t in host.kv for b in block_ids):
        raise SelfTestFailed("the reserved KV blocks are outside this rank's KV tensors")
    if not 0 <= chunk_id < int(host.regions[0].shape[0]):
        raise SelfTestFailed("the reserved host chunk is outside this rank's host region")
    if _busy(connector, host):
        raise SelfTestFailed(
            "offload transfers of the engine's own are in flight; the self-test runs before serving"
        )
    gpu = GPULoadStoreSpec(block_ids, [len(block_ids)], [0])
    cpu = CPULoadStoreSpec([chunk_id])
    original = [[row.clone() for row in (t[b] for b in block_ids)] for t in host.kv]
    saved = host.save(chunk_id)
    try:
        canaries = [_canary_page(int(t[0].numel() * t.element_size())) for t in host.kv]
        pages = [page for page, _ in canaries]
        _write(host, block_ids, pages)
        for t_idx, (rows, (page, pats)) in enumerate(zip(_read(host, block_ids), canaries, strict=True)):
            if any(row != page or not set(_PLANTED) <= set(_found(pats, row)) for row in rows):
                raise SelfTestFailed(f"the canary written into KV tensor {t_idx} could not be read back")
        before = host.slot_bytes(chunk_id)
        if not host.worker.submit_store(STORE_JOB, gpu, cpu) or not _finish(host, STORE_JOB):
            raise SelfTestFailed(f"{host.kind} refused to store the canary chunk")
        at_rest = host.slot_bytes(chunk_id)
        if at_rest == before:
            raise SelfTestFailed(f"{host.kind} reported the store done but the host chunk did not change")
        for t_idx, (_, pats) in enumerate(canaries):
            shapes = _found(pats, at_rest)
            if shapes:
                raise SelfTestFailed(
                    f"the canary was found in plaintext at rest in the host offload region "
                    f"({', '.join(shapes)}; KV tensor {t_idx}'s page) -- {host.kind} stores KV unsealed"
                )
        # round trip: over other bytes first, so a load that writes nothing cannot pass
        sentinel = [secrets.token_bytes(len(page)) for page in pages]
        _write(host, block_ids, sentinel)
        if not host.worker.submit_load(LOAD_JOB, cpu, gpu) or not _finish(host, LOAD_JOB):
            raise SelfTestFailed(f"{host.kind} refused to load back the chunk it had just stored")
        for t_idx, (rows, page) in enumerate(zip(_read(host, block_ids), pages, strict=True)):
            if any(row != page for row in rows):
                raise SelfTestFailed(
                    f"the chunk loaded back into KV tensor {t_idx} differs from what was stored"
                )
        # one flipped bit: refused, and nothing written
        _write(host, block_ids, sentinel)
        host.tamper(chunk_id)
        try:
            loaded = bool(host.worker.submit_load(TAMPERED_JOB, cpu, gpu)) and _finish(host, TAMPERED_JOB)
        except SelfTestFailed:
            raise
        except Exception:  # an integrity error raised instead of reported is a refusal too
            loaded = False
        after = _read(host, block_ids)
        if loaded:
            raise SelfTestFailed(
                f"a stored chunk with one bit flipped was loaded into the KV cache -- {host.kind} does not "
                "authenticate what it offloads"
            )
        for t_idx, (rows, page) in enumerate(zip(after, sentinel, strict=True)):
            if any(row != page for row in rows):
                raise SelfTestFailed(f"a refused load still wrote into KV tensor {t_idx}")
    finally:
        for tensor, rows in zip(host.kv, original, strict=True):
            for block, row in zip(block_ids, rows, strict=True):
                tensor[block].copy_(row)
        host.restore(chunk_id, saved)
    return {"layers": len(host.kv), "device": str(host.kv[0].device), "kind": host.kind}
