"""``encrypt_offload``: an offloading spec whose host copy of the KV cache is AES-256-GCM ciphertext.

vLLM's native offloading (``--kv-offloading-size``) copies KV blocks into a
host-memory region in the clear. ``EncryptedCPUOffloadingSpec`` keeps vLLM's
scheduler-side manager (``CPUOffloadingManager``: which chunks exist, LRU,
events) and replaces the worker with one that encrypts each chunk on store and
authenticates it on load:

* chunks are sealed with the core's one format (``pccguard.enforcement.sealing``,
  purpose ``vllm-offload``): the key is generated when the worker starts and
  held only in this process, so a restart makes everything offloaded before it
  unreadable;
* every chunk is bound (associated data) to its tensor, its slot and a store
  counter kept in memory, so ciphertext moved between slots or replayed from
  an older store fails authentication;
* a chunk that fails authentication is never written into the KV cache: the
  load reports failure (vLLM then recomputes or fails the request, per
  ``kv_load_failure_policy``) and an ``offload_integrity_failure`` audit event
  is emitted.

Selected through the connector's ``spec_name``/``spec_module_path`` extra
config (see ``configure``). One KV-cache group (the common case) is supported;
a model with several groups is refused at worker start.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import torch
from vllm.v1.kv_offload.base import (
    BlockIDsLoadStoreSpec,
    CanonicalKVCaches,
    GPULoadStoreSpec,
    LoadStoreSpec,
    OffloadingWorker,
    TransferResult,
)
from vllm.v1.kv_offload.cpu.spec import CPUOffloadingSpec

from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement.audit import AuditKind
from pccguard.enforcement.sealing import OVERHEAD, Sealer, SealError

logger = logging.getLogger("pccguard.vllm.offload")
#: The sealing purpose of host chunks: part of every chunk's associated data.
PURPOSE = "vllm-offload"


class OffloadIntegrityError(SealError):
    """An offloaded chunk cannot be trusted (tampered, replayed, never stored, or from before a restart)."""


class EncryptedHostStore:
    """The host region: one ``uint8`` tensor per KV tensor, one sealed slot per chunk (the offload medium)."""

    def __init__(self, page_bytes: list[int], blocks_per_chunk: int, num_chunks: int) -> None:
        self.blocks_per_chunk = blocks_per_chunk
        self.plain_bytes = [p * blocks_per_chunk for p in page_bytes]
        self.regions = [torch.zeros((num_chunks, n + OVERHEAD), dtype=torch.uint8) for n in self.plain_bytes]
        self.cipher = Sealer(PURPOSE)
        self._versions: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def write(self, tensor_idx: int, chunk_id: int, plaintext: Any) -> None:
        with self._lock:
            version = self._versions.get((tensor_idx, chunk_id), 0) + 1
            self._versions[(tensor_idx, chunk_id)] = version
        # Sealed straight into the slot: context (tensor, chunk, version) is the slot and its store count.
        self.cipher.seal_into(
            self.regions[tensor_idx][chunk_id].numpy().data, plaintext, tensor_idx, chunk_id, version
        )

    def read(self, tensor_idx: int, chunk_id: int) -> bytes:
        version = self._versions.get((tensor_idx, chunk_id))
        if version is None:
            raise OffloadIntegrityError(f"offloaded chunk {chunk_id} was never stored by this process")
        return self.cipher.open(
            self.regions[tensor_idx][chunk_id].numpy().data, tensor_idx, chunk_id, version
        )


def _block_ids(spec: LoadStoreSpec) -> Any:
    """The host chunk indices of a transfer; a spec that names no block ids is refused, never guessed at."""
    if not isinstance(spec, BlockIDsLoadStoreSpec):
        raise TypeError(f"an offload transfer names {type(spec).__name__}, not host chunks")
    return np.asarray(spec.block_ids, dtype=np.int64)


class EncryptedOffloadingWorker(OffloadingWorker):  # type: ignore[misc]
    """Synchronous store/load between the paged KV tensors and the encrypted host store."""

    def __init__(self, kv_caches: CanonicalKVCaches, blocks_per_chunk: int, num_chunks: int) -> None:
        if len(kv_caches.group_data_refs) > 1:
            raise OffloadIntegrityError("encrypted offloading supports one KV-cache group; refusing to start")
        self.tensors = [t.tensor for t in kv_caches.tensors]
        pages = [int(t.tensor.shape[1]) for t in kv_caches.tensors]
        self.store = EncryptedHostStore(pages, blocks_per_chunk, num_chunks)
        self.blocks_per_chunk = blocks_per_chunk
        self._finished: list[TransferResult] = []
        self._lock = threading.Lock()

    def _done(self, job_id: int, ok: bool, size: int, started: float) -> bool:
        with self._lock:
            self._finished.append(TransferResult(job_id, ok, size, time.perf_counter() - started))
        return True

    def submit_store(self, job_id: int, src_spec: GPULoadStoreSpec, dst_spec: LoadStoreSpec) -> bool:
        started = time.perf_counter()
        gpu_ids = np.asarray(src_spec.block_ids, dtype=np.int64)
        chunk_ids = _block_ids(dst_spec)
        bpc = self.blocks_per_chunk
        size = 0
        for c, chunk_id in enumerate(chunk_ids.tolist()):
            ids = torch.from_numpy(gpu_ids[c * bpc : (c + 1) * bpc])
            for t_idx, tensor in enumerate(self.tensors):
                data = tensor.index_select(0, ids.to(tensor.device)).cpu().contiguous().view(torch.uint8)
                plain: Any = data.numpy().reshape(-1)
                short = self.store.plain_bytes[t_idx] - plain.size
                if short:  # a short last chunk is padded
                    plain = np.concatenate([plain, np.zeros(short, dtype=np.uint8)])
                self.store.write(t_idx, int(chunk_id), memoryview(plain))
                size += int(plain.size)
        audit_log().emit(AuditKind.OFFLOAD_ENCRYPTED, mitigation="encrypt_offload", count=size, unit="bytes")
        return self._done(job_id, True, size, started)

    def submit_load(
        self, job_id: int, src_spec: LoadStoreSpec, dst_spec: GPULoadStoreSpec, expedited: bool = False
    ) -> bool:
        del expedited
        started = time.perf_counter()
        chunk_ids = _block_ids(src_spec).tolist()
        gpu_ids = np.asarray(dst_spec.block_ids, dtype=np.int64)
        bpc = self.blocks_per_chunk
        skip = int(dst_spec.block_indices[0]) % bpc if dst_spec.block_indices else 0
        try:  # authenticate everything before writing anything
            plains = [[self.store.read(t, int(c)) for t in range(len(self.tensors))] for c in chunk_ids]
        except SealError:  # the sealing format's one refusal, and ``OffloadIntegrityError`` (a kind of it)
            audit_log().emit(
                AuditKind.OFFLOAD_INTEGRITY_FAILURE,
                mitigation="encrypt_offload",
                count=len(chunk_ids),
                unit="blocks",
            )
            logger.error("pccguard: an offloaded KV chunk failed authentication; the load is rejected")
            return self._done(job_id, False, 0, started)
        slots = [(c, b) for c in range(len(chunk_ids)) for b in range(bpc)][skip : skip + len(gpu_ids)]
        size = 0
        for t_idx, tensor in enumerate(self.tensors):
            page = int(tensor.shape[1])
            for gpu_id, (c, b) in zip(gpu_ids.tolist(), slots, strict=True):
                row = np.frombuffer(plains[c][t_idx], dtype=np.uint8, count=page, offset=b * page)
                if tensor.device.type == "cpu":
                    tensor[gpu_id].view(torch.uint8).numpy()[:] = row
                else:
                    tensor[gpu_id].copy_(torch.from_numpy(row.copy()).view(tensor.dtype).to(tensor.device))
                size += page
        return self._done(job_id, True, size, started)

    def get_finished(self) -> list[TransferResult]:
        with self._lock:
            done, self._finished = self._finished, []
        return done

    def wait(self, job_ids: set[int]) -> None:
        return  # transfers complete inside submit_*


class EncryptedCPUOffloadingSpec(CPUOffloadingSpec):  # type: ignore[misc]
    """vLLM's CPU offloading spec with the encrypting worker."""

    def get_worker(self, kv_caches: CanonicalKVCaches) -> OffloadingWorker:
        if getattr(self, "_pccguard_worker", None) is None:
            self._pccguard_worker = EncryptedOffloadingWorker(
                kv_caches, self.blocks_per_chunk, self.num_chunks
            )
            audit_log().emit(AuditKind.MITIGATION_INSTALLED, mitigation="encrypt_offload", reason="worker")
        worker: OffloadingWorker = self._pccguard_worker
        return worker
