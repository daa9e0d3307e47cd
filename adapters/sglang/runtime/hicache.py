"""``encrypt_offload``: an AES-GCM HiCache L3 storage backend with in-memory per-start keys.

SGLang 0.5.23's ``file`` backend writes raw KV pages to disk. This backend is
SGLang's own ``HiCacheFile`` (same keys, eviction and page I/O, v1 and v2
interfaces) with every page sealed before it is written, in the core's one
sealing format (``pccguard.enforcement.sealing``, purpose ``sglang-hicache``):
AES-256-GCM, ``nonce || ciphertext || tag``, with the storage key in the
associated data so a page cannot be swapped for another key's. The key is
generated in memory when the backend starts and never written anywhere, so
pages from an earlier start cannot be decrypted (cryptographic erasure at
restart); a page that does not open is treated as a miss and audited. Each
start uses a fresh directory unless ``file_storage_path`` is configured.

Enable it through SGLang's dynamic storage-backend interface::

    --enable-hierarchical-cache --hicache-storage-backend dynamic
    --hicache-storage-backend-extra-config '{"backend_name": "pccguard-aesgcm",
      "module_path": "pccguard.adapters.sglang.runtime.hicache",
      "class_name": "EncryptedHiCacheStorage"}'
"""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

import torch
from sglang.srt.mem_cache.hicache_storage import HiCacheFile

from pccguard.enforcement.audit import AuditKind
from pccguard.enforcement.sealing import Sealer, SealError

from .state import STATE

MITIGATION = "encrypt_offload"
#: The sealing purpose of HiCache pages: part of every page's associated data.
PURPOSE = "sglang-hicache"


class EncryptedHiCacheStorage(HiCacheFile):  # type: ignore[misc]
    """``HiCacheFile`` whose pages are AES-256-GCM sealed under a per-start in-memory key."""

    def __init__(self, storage_config: Any, kwargs: Any = None) -> None:
        extra = dict(storage_config.extra_config or {})
        path = extra.get("file_storage_path") or tempfile.mkdtemp(prefix="pccguard-hicache-")
        super().__init__(storage_config, file_path=path)
        self.file_path = path
        self._sealer = Sealer(PURPOSE)
        STATE.audit.emit(AuditKind.MITIGATION_INSTALLED, mitigation=MITIGATION, reason="hicache_backend")

    def __repr__(self) -> str:  # never show the key
        return "EncryptedHiCacheStorage(<key in memory>)"

    def seal(self, storage_key: str, plaintext: bytes) -> bytes:
        """The page as written to disk, bound to the key it is stored under."""
        return self._sealer.seal(plaintext, storage_key)

    def open_sealed(self, storage_key: str, sealed: bytes) -> bytes | None:
        """The page stored under ``storage_key``, or ``None`` (a miss, audited) when it does not open."""
        try:
            return self._sealer.open(sealed, storage_key)
        except SealError:
            STATE.count(AuditKind.OFFLOAD_INTEGRITY_FAILURE, MITIGATION, 1, "blocks")
            return None

    def set(self, key: str, value: Any = None, target_location: Any = None, target_sizes: Any = None) -> bool:
        suffixed = self._get_suffixed_key(key)
        path = os.path.join(self.file_path, f"{suffixed}.bin")
        if self.exists(key):
            self._evictor.touch(suffixed, path)
            return True
        sealed = self.seal(suffixed, value.contiguous().view(dtype=torch.uint8).numpy().tobytes())
        if not self._evictor.reserve(suffixed, len(sealed), key=key):
            return False
        tmp = os.path.join(self.file_path, f".{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(sealed)
            os.replace(tmp, path)
        except OSError:
            self._evictor.abort(suffixed)
            if os.path.exists(tmp):
                os.remove(tmp)
            return False
        self._evictor.commit(suffixed)
        if self.metadata_cache is not None:
            self.metadata_cache.add(suffixed)
        STATE.count(AuditKind.OFFLOAD_ENCRYPTED, MITIGATION, len(sealed), "bytes")
        return True

    def get(self, key: str, target_location: Any = None, target_sizes: Any = None) -> torch.Tensor | None:
        suffixed = self._get_suffixed_key(key)
        path = os.path.join(self.file_path, f"{suffixed}.bin")
        try:
            with open(path, "rb") as handle:
                sealed = handle.read()
        except FileNotFoundError:
            if self.metadata_cache is not None:
                self.metadata_cache.remove(suffixed)
            return None
        plain = self.open_sealed(suffixed, sealed)
        target = target_location.view(torch.uint8).reshape(-1)
        if plain is None or len(plain) != target.numel():
            return None
        target.copy_(torch.frombuffer(bytearray(plain), dtype=torch.uint8))
        self._evictor.touch(suffixed, path)
        return target_location
