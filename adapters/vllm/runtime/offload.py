"""``encrypt_offload``: an offloading spec whose host copy of the KV cache is AES-256-GCM ciphertext.

vLLM's native offloading (``--kv-offloading-size``) copies KV blocks into a
host-memory region in the clear. ``EncryptedCPUOffloadingSpec`` keeps vLLM's
scheduler-side manager (``CPUOffloadingManager``: which chunks exist, LRU,
events) and replaces the worker with one that encrypts each chunk on store and
authenticates it on load:

* the key is generated when the worker starts and held only in this process,
  so a restart makes everything offloaded before it unreadable;
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
import os
import struct
import threading
import time
from typing import Any

import numpy as np
import torch
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from vllm.v1.kv_offload.base import (
    CanonicalKVCaches,
    GPULoadStoreSpec,
    LoadStoreSpec,
    OffloadingWorker,
    TransferResult,
)
from vllm.v1.kv_offload.cpu.spec import CPUOffloadingSpec

from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement.audit import AuditKind

logger = logging.getLogger("pccguard.vllm.offload")
NONCE = 12
TAG = 16


class OffloadIntegrityError(Exception):
    """An offloaded chunk failed authentication (tampered, replayed, or from before a restart)."""


class ChunkCipher:
    """AES-256-GCM over host chunks; the key never leaves this object."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._salt = os.urandom(8)  # distinguishes this process's nonces and associated data

    def __repr__(self) -> str:
        return "ChunkCipher(<key hidden>)"

    def _aad(self, tensor_idx: int, chunk_id: int, version: int) -> bytes:
        return self._salt + struct.pack("<IQQ", tensor_idx, chunk_id, version)

    def seal(self, plaintext: Any, tensor_idx: int, chunk_id: int, version: int) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext+tag)``; ``plaintext`` is any bytes-like object (no copy is made of it)."""
        nonce = os.urandom(NONCE)
        return nonce, self._aead.encrypt(nonce, plaintext, self._aad(tensor_idx, chunk_id, version))

    def open(self, sealed: Any, tensor_idx: int, chunk_id: int, version: int) -> bytes:
        # One memcpy into bytes first: the library decrypts a strided buffer view an order of magnitude slower.
        view = memoryview(sealed.tobytes() if hasattr(sealed, "tobytes") else bytes(sealed))
        try:
            return self._aead.decrypt(view[:NONCE], view[NONCE:], self._aad(tensor_idx, chunk_id, version))
        except InvalidTag:
            raise OffloadIntegrityError(f"offloaded chunk {chunk_id} failed authentication") from None


class EncryptedHostStore:
    """The host region: one ``uint8`` tensor per KV tensor, one sealed slot per chunk (the offload medium)."""

    def __init__(self, page_bytes: list[int], blocks_per_chunk: int, num_chunks: int) -> None:
        self.blocks_per_chunk = blocks_per_chunk
        self.plain_bytes = [p * blocks_per_chunk for p in page_bytes]
        self.regions = [
            torch.zeros((num_chunks, NONCE + n + TAG), dtype=torch.uint8) for n in self.plain_bytes
        ]
        self.cipher = ChunkCipher()
        self._versions: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def write(self, tensor_idx: int, chunk_id: int, plaintext: Any) -> None:
        with self._lock:
            version = self._versions.get((tensor_idx, chunk_id), 0) + 1
            self._versions[(tensor_idx, chunk_id)] = version
        nonce, sealed = self.cipher.seal(plaintext, tensor_idx, chunk_id, version)
        slot = self.regions[tensor_idx][chunk_id].numpy()
        slot[:NONCE] = np.frombuffer(nonce, dtype=np.uint8)
        slot[NONCE:] = np.frombuffer(sealed, dtype=np.uint8)

    def read(self, tensor_idx: int, chunk_id: int) -> bytes:
        version = self._versions.get((tensor_idx, chunk_id))
        if version is None:
            raise OffloadIntegrityError(f"offloaded chunk {chunk_id} was never stored by this process")
        return self.cipher.open(self.regions[tensor_idx][chunk_id].numpy(), tensor_idx, chunk_id, version)


class EncryptedOffloadingWorker(OffloadingWorker):
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
        chunk_ids = np.asarray(dst_spec.block_ids, dtype=np.int64)
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
        chunk_ids = np.asarray(src_spec.block_ids, dtype=np.int64).tolist()
        gpu_ids = np.asarray(dst_spec.block_ids, dtype=np.int64)
        bpc = self.blocks_per_chunk
        skip = int(dst_spec.block_indices[0]) % bpc if dst_spec.block_indices else 0
        try:  # authenticate everything before writing anything
            plains = [[self.store.read(t, int(c)) for t in range(len(self.tensors))] for c in chunk_ids]
        except OffloadIntegrityError:
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


class EncryptedCPUOffloadingSpec(CPUOffloadingSpec):
    """vLLM's CPU offloading spec with the encrypting worker."""

    def get_worker(self, kv_caches: CanonicalKVCaches) -> OffloadingWorker:
        if getattr(self, "_pccguard_worker", None) is None:
            self._pccguard_worker = EncryptedOffloadingWorker(
                kv_caches, self.blocks_per_chunk, self.num_chunks
            )
            audit_log().emit(AuditKind.MITIGATION_INSTALLED, mitigation="encrypt_offload", reason="worker")
        worker: OffloadingWorker = self._pccguard_worker
        return worker
