"""Scenario: what reaches the disk through SGLang's HiCache ``file`` storage backend?

The same KV page (a recognisable canary) is written through SGLang's
``HiCacheFile`` and through pccguard's ``EncryptedHiCacheStorage`` (created by
SGLang's own dynamic backend factory); the scenario looks for the plaintext in
the files, reads the page back, and tampers with and truncates a stored page.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from _common import report

CANARY = 4242.0


def config(path: str, dynamic: bool) -> object:
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig

    extra = {"file_storage_path": path}
    if dynamic:
        extra.update(
            backend_name="pccguard-aesgcm",
            module_path="pccguard.adapters.sglang.runtime.hicache",
            class_name="EncryptedHiCacheStorage",
        )
    return HiCacheStorageConfig(
        tp_rank=0,
        tp_size=1,
        pp_rank=0,
        pp_size=1,
        attn_cp_rank=0,
        attn_cp_size=1,
        is_mla_model=False,
        enable_storage_metrics=False,
        is_page_first_layout=False,
        model_name="tiny",
        extra_config=extra,
    )


def main() -> None:
    from sglang.srt.mem_cache.hicache_storage import HiCacheFile
    from sglang.srt.mem_cache.storage.backend_factory import StorageBackendFactory

    page = torch.full((64,), CANARY, dtype=torch.float32)
    needle = page[:4].numpy().tobytes()
    result = {}
    for name, dynamic in (("file", False), ("pccguard", True)):
        path = tempfile.mkdtemp()
        if dynamic:
            store = StorageBackendFactory.create_backend("dynamic", config(path, True), None)
        else:
            store = HiCacheFile(config(path, False), file_path=path)
        ok = store.set("page-0", page)
        files = [p for p in Path(path).iterdir() if p.suffix == ".bin"]
        plaintext_on_disk = any(needle in p.read_bytes() for p in files)
        back = torch.zeros(64, dtype=torch.float32)
        read = store.get("page-0", back)
        roundtrip = read is not None and bool(torch.equal(back, page))
        tampered = truncated = audited = None
        if dynamic and files:
            from pccguard.adapters.sglang.runtime.state import STATE

            sealed = files[0].read_bytes()
            data = bytearray(sealed)
            data[20] ^= 0xFF
            files[0].write_bytes(bytes(data))
            tampered = store.get("page-0", torch.zeros(64, dtype=torch.float32)) is None
            files[0].write_bytes(sealed[:20])  # shorter than a nonce and a tag
            truncated = store.get("page-0", torch.zeros(64, dtype=torch.float32)) is None
            files[0].write_bytes(sealed)  # positive control: the untouched page still reads back
            truncated = truncated and store.get("page-0", torch.zeros(64, dtype=torch.float32)) is not None
            audited = STATE.counters().get("offload_integrity_failure/encrypt_offload", 0)
        result[name] = {
            "stored": bool(ok),
            "files": len(files),
            "plaintext_on_disk": plaintext_on_disk,
            "roundtrip": roundtrip,
            "tamper_rejected": tampered,
            "truncated_rejected": truncated,
            "integrity_failures_audited": audited,
            "class": type(store).__name__,
        }
    report(result)


if __name__ == "__main__":
    sys.argv += ["none"] if len(sys.argv) < 3 else []
    main()
