"""Scenario: a canary in host KV pages, backed up to HiCache L3 storage; what lands in the storage directory?

The engine is configured as an operator would start it, and the storage
backend is built the way SGLang's ``HiCacheController`` builds it:

* without the plugin: ``--enable-hierarchical-cache --hicache-storage-backend file``;
* with the plugin: ``--hicache-storage-backend dynamic`` naming pccguard's
  ``EncryptedHiCacheStorage``, with the plugin installed and deciding (it
  must install ``encrypt_offload``).

The ServerArgs are real and resolved; the backend comes from SGLang's
``StorageBackendFactory`` with a ``HiCacheStorageConfig`` built from them; the
host pool is SGLang's ``MHATokenToKVPoolHost`` over a real device pool
(``MHATokenToKVPool``). The canary (text and token ids, from the test's work
directory) is placed into host pages of a cached prefix with the host pool's
own ``set_from_flat_data_page``, and the pages are written to storage through
the controller's own backup routine (``HiCacheController._generic_page_set``
-> ``batch_set`` -> the backend's ``set``), keyed by SGLang's page hashes.
SGLang's device-to-host copy kernels do not exist on the CPU, so the pages
are placed in host memory directly rather than copied up from the device.

The test scans the storage directory with ``pccguard scan``; the scenario
reports what it wrote, never the canary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from _common import TINY_LLAMA, args, install_plugin, report, server_args

#: The work directory the test made: ``canary.txt``, ``canary-ids.txt``; storage goes to ``storage/``.
WORKDIR_ENV = "HICACHE_SCAN_WORKDIR"
PAGE_SIZE = 16
PAGES = 4
PCCGUARD_BACKEND = {
    "backend_name": "pccguard-aesgcm",
    "module_path": "pccguard.adapters.sglang.runtime.hicache",
    "class_name": "EncryptedHiCacheStorage",
}


def engine_args(plugin: bool, storage: Path) -> list[str]:
    extra: dict[str, Any] = {"file_storage_path": str(storage)}
    backend = "file"
    if plugin:
        backend = "dynamic"
        extra.update(PCCGUARD_BACKEND)
    return [
        "--enable-hierarchical-cache",
        "--page-size",
        str(PAGE_SIZE),
        "--hicache-storage-backend",
        backend,
        "--hicache-storage-backend-extra-config",
        json.dumps(extra),
    ]


def pools() -> tuple[Any, Any]:
    """A device KV pool of the tiny model's geometry and SGLang's host pool over it (unpinned: no CUDA)."""
    from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool
    from sglang.srt.mem_cache.pool_host.mha import get_mha_host_pool_cls

    heads = int(TINY_LLAMA["num_key_value_heads"])
    head_dim = int(TINY_LLAMA["hidden_size"]) // int(TINY_LLAMA["num_attention_heads"])
    device = MHATokenToKVPool(
        size=PAGE_SIZE * 16,
        page_size=PAGE_SIZE,
        dtype=torch.float32,
        head_num=heads,
        head_dim=head_dim,
        layer_num=int(TINY_LLAMA["num_hidden_layers"]),
        device="cpu",
        enable_memory_saver=False,
        enable_alt_stream=False,
    )
    info = device.get_device_pool_infos()[0].buffer_info
    host = get_mha_host_pool_cls(info)(
        info,
        2.0,
        0,
        PAGE_SIZE,
        "layer_first",
        pin_memory=False,
        device="cpu",
        device_capacity_tokens=device.size,
        start_layer=device.start_layer,
        end_layer=device.end_layer,
    )
    return device, host


def storage_backend(sa: Any, host: Any) -> Any:
    """The backend SGLang's controller would build for these ServerArgs (rank 0 of 1)."""
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig
    from sglang.srt.mem_cache.storage import StorageBackendFactory

    config = HiCacheStorageConfig(
        tp_rank=0,
        tp_size=1,
        pp_rank=0,
        pp_size=1,
        attn_cp_rank=0,
        attn_cp_size=1,
        is_mla_model=False,
        enable_storage_metrics=False,
        is_page_first_layout=host.layout == "page_first",
        model_name="tiny",
        extra_config=json.loads(sa.hicache_storage_backend_extra_config or "{}"),
    )
    backend = StorageBackendFactory.create_backend(sa.hicache_storage_backend, config, host)
    backend.register_mem_pool_host(host)
    return backend


def canary_page(host: Any, text: str, ids: list[int]) -> torch.Tensor:
    """One flat host page holding the canary as a model's KV page would carry it: text, ids as int32 and int64."""
    import numpy as np

    page = host.get_dummy_flat_data_page()
    raw = page.view(torch.uint8)
    planted = (
        text.encode("utf-8") + np.asarray(ids, dtype="<i4").tobytes() + np.asarray(ids, dtype="<i8").tobytes()
    )
    assert len(planted) <= raw.numel(), "a host page is too small for the canary"
    raw[: len(planted)] = torch.frombuffer(bytearray(planted), dtype=torch.uint8)
    return page


def main() -> None:
    from sglang.srt.managers.cache_controller import HiCacheController
    from sglang.srt.mem_cache.utils import get_hash_str

    model, plugin = args()
    work = Path(os.environ[WORKDIR_ENV])
    text = (work / "canary.txt").read_text(encoding="utf-8").strip()
    ids = [int(i) for i in (work / "canary-ids.txt").read_text(encoding="utf-8").split(",")]
    storage = work / "storage"
    sa = server_args(model, *engine_args(plugin, storage))
    installed: list[str] = []
    if plugin:
        decision = install_plugin(sa)
        installed = sorted(decision.installed) if decision is not None else []
    _, host = pools()
    backend = storage_backend(sa, host)

    # A cached prefix of PAGES pages in host memory; the canary is in its first page.
    host_indices = host.alloc(PAGES * PAGE_SIZE)
    assert host_indices is not None, "the host pool has no room for the prefix"
    page = canary_page(host, text, ids)
    host.set_from_flat_data_page(int(host_indices[0]), page)
    in_host = bytes(host.get_data_page(int(host_indices[0])).view(torch.uint8).numpy().tobytes())
    planted_in_host = text.encode("utf-8") in in_host  # positive control: the host page holds it

    tokens = list(range(100, 100 + PAGES * PAGE_SIZE))
    keys: list[str] = []
    prior = None
    for p in range(PAGES):
        prior = get_hash_str(tokens[p * PAGE_SIZE : (p + 1) * PAGE_SIZE], prior)
        keys.append(str(prior))
    controller = SimpleNamespace(storage_host_pool=host, page_size=PAGE_SIZE, storage_backend=backend)
    stored = bool(HiCacheController._generic_page_set(controller, keys, host_indices))

    # The page reads back through the same backend (the round trip a prefetch takes).
    back = host.get_dummy_flat_data_page()
    read = backend.get(keys[0], back)
    roundtrip = read is not None and bool(torch.equal(back, page))

    files = sorted(p.name for p in storage.iterdir() if p.suffix == ".bin")
    report(
        {
            "backend": sa.hicache_storage_backend,
            "class": type(getattr(backend, "_backend", backend)).__name__,
            "installed": installed,
            "planted_in_host": planted_in_host,
            "stored": stored,
            "files": len(files),
            "roundtrip": roundtrip,
            "storage": str(storage),
        }
    )


if __name__ == "__main__":
    main()
