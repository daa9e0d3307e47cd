"""encrypt_offload: vLLM's offloading manager with pccguard's encrypting worker, on real paged KV tensors.

vLLM's own CPU offloading worker needs CUDA (it refuses to start on the CPU
platform), so the store/load path is driven here through the same
``OffloadingSpec`` API the ``OffloadingConnector`` uses: the spec is created
by vLLM's ``OffloadingSpecFactory`` from the connector configuration the
plugin writes, the manager is vLLM's ``CPUOffloadingManager``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from vllm.distributed.kv_transfer.kv_connector.v1.offloading.config import OffloadingConfig
from vllm.v1.kv_offload.base import (
    CanonicalKVCacheRef,
    CanonicalKVCaches,
    CanonicalKVCacheTensor,
    GPULoadStoreSpec,
    ReqContext,
    make_offload_key,
)
from vllm.v1.kv_offload.config import (
    OffloadingCacheConfig,
    OffloadingGroupConfig,
    OffloadingModelConfig,
    OffloadingParallelConfig,
)
from vllm.v1.kv_offload.factory import OffloadingSpecFactory

from pccguard.adapters.vllm.runtime.audit import replace_audit_log
from pccguard.adapters.vllm.runtime.configure import OFFLOAD_MODULE, OFFLOAD_SPEC
from pccguard.adapters.vllm.runtime.offload import EncryptedCPUOffloadingSpec
from pccguard.enforcement.audit import AuditEvent, AuditKind, AuditLog

NUM_BLOCKS = 16
PAGE = 2 * 16 * 2 * 16 * 4  # bytes of one block of one layer (heads x block x 2*head_size x fp32)
CANARY = np.float32(31337.25)


def _offloading_config(extra: dict[str, Any]) -> OffloadingConfig:
    return OffloadingConfig(
        groups=(OffloadingGroupConfig(tokens_per_block=16, layer_names=("l0", "l1"), group_id=0),),
        worker_kv_bytes_per_block=2 * PAGE,
        enable_kv_cache_events=False,
        extra_config=extra,
        engine_id="test",
        model=OffloadingModelConfig(name="tiny", dtype="float32", max_model_len=512),
        cache=OffloadingCacheConfig(tokens_per_hash=16, blocks_per_chunk=1),
        parallel=OffloadingParallelConfig(
            rank=0,
            world_size=1,
            tp_size=1,
            pp_size=1,
            pcp_size=1,
            dcp_size=1,
            data_parallel_index=0,
            data_parallel_size=1,
            data_parallel_rank_local=None,
            is_parallelism_agnostic=True,
        ),
    )


def _kv() -> tuple[list[torch.Tensor], CanonicalKVCaches]:
    layers = [torch.zeros((NUM_BLOCKS, 2, 16, 32), dtype=torch.float32) for _ in range(2)]
    tensors = [CanonicalKVCacheTensor(t.view(NUM_BLOCKS, -1).view(torch.int8), PAGE) for t in layers]
    refs = [[CanonicalKVCacheRef(0, PAGE), CanonicalKVCacheRef(1, PAGE)]]
    return layers, CanonicalKVCaches(tensors=tensors, group_data_refs=refs)


def _spec() -> EncryptedCPUOffloadingSpec:
    extra = {"cpu_bytes_to_use": 64 * 2 * PAGE, "spec_name": OFFLOAD_SPEC, "spec_module_path": OFFLOAD_MODULE}
    spec = OffloadingSpecFactory.create_spec(_offloading_config(extra))
    assert isinstance(spec, EncryptedCPUOffloadingSpec)
    return spec


@pytest.fixture
def events() -> Any:
    collected: list[AuditEvent] = []
    previous = replace_audit_log(AuditLog("vllm", sinks=[collected.append]))
    yield collected
    replace_audit_log(previous)


def _store(spec: Any, worker: Any, gpu_blocks: list[int]) -> Any:
    manager = spec.get_manager()
    ctx = ReqContext(req_id="r")
    keys = [make_offload_key(bytes([i]) * 32, 0) for i in range(len(gpu_blocks))]
    out = manager.prepare_store(keys, ctx)
    assert out is not None and list(out.keys_to_store) == keys
    assert worker.submit_store(1, GPULoadStoreSpec(gpu_blocks, [len(gpu_blocks)], [0]), out.store_spec)
    assert [r.success for r in worker.get_finished()] == [True]
    manager.complete_store(keys, ctx)
    return out.store_spec


def _canary_bytes() -> bytes:
    return np.array([CANARY] * 4, dtype=np.float32).tobytes()


def test_offloaded_bytes_hold_no_plaintext_and_load_back(events: list[AuditEvent]) -> None:
    layers, caches = _kv()
    for layer in layers:
        layer[3].fill_(float(CANARY))
        layer[5].fill_(float(CANARY) + 1)
    # positive control: the canary is findable in the raw KV bytes a plain copy would move
    assert _canary_bytes() in layers[0][3].numpy().tobytes()
    spec = _spec()
    worker = spec.get_worker(caches)
    chunks = _store(spec, worker, [3, 5])
    host = b"".join(region.numpy().tobytes() for region in worker.store.regions)
    assert _canary_bytes() not in host
    assert np.float32(CANARY).tobytes() not in host
    # load back into other blocks: authenticated, identical
    worker.submit_load(2, chunks, GPULoadStoreSpec([9, 10], [2], [0]))
    assert [r.success for r in worker.get_finished()] == [True]
    for layer in layers:
        assert torch.equal(layer[9], layer[3]) and torch.equal(layer[10], layer[5])
    assert any(e.kind == AuditKind.OFFLOAD_ENCRYPTED and e.count > 0 for e in events)


def test_tampering_is_detected_and_never_loaded(events: list[AuditEvent]) -> None:
    layers, caches = _kv()
    layers[0][2].fill_(float(CANARY))
    spec = _spec()
    worker = spec.get_worker(caches)
    chunks = _store(spec, worker, [2])
    chunk = int(np.asarray(chunks.block_ids)[0])
    worker.store.regions[0][chunk][40] ^= 0x01  # one bit flipped in the ciphertext
    worker.submit_load(3, chunks, GPULoadStoreSpec([7], [1], [0]))
    assert [r.success for r in worker.get_finished()] == [False]
    assert torch.count_nonzero(layers[0][7]) == 0 and torch.count_nonzero(layers[1][7]) == 0
    assert any(e.kind == AuditKind.OFFLOAD_INTEGRITY_FAILURE for e in events)


def test_swapped_chunks_are_detected() -> None:
    layers, caches = _kv()
    layers[0][1].fill_(1.0)
    layers[0][2].fill_(2.0)
    spec = _spec()
    worker = spec.get_worker(caches)
    chunks = np.asarray(_store(spec, worker, [1, 2]).block_ids).tolist()
    region = worker.store.regions[0]
    saved = region[chunks[0]].clone()
    region[chunks[0]].copy_(region[chunks[1]])
    region[chunks[1]].copy_(saved)
    from vllm.v1.kv_offload.cpu.common import CPULoadStoreSpec

    worker.submit_load(4, CPULoadStoreSpec(chunks[:1]), GPULoadStoreSpec([8], [1], [0]))
    assert [r.success for r in worker.get_finished()] == [False]


def test_restart_makes_old_bytes_unreadable() -> None:
    layers, caches = _kv()
    layers[0][4].fill_(float(CANARY))
    spec = _spec()
    worker = spec.get_worker(caches)
    chunks = _store(spec, worker, [4])
    old_regions = [r.clone() for r in worker.store.regions]
    # "restart": a new spec and worker (new key); the old host bytes are put back where they were
    _, caches2 = _kv()
    spec2 = _spec()
    worker2 = spec2.get_worker(caches2)
    _store(spec2, worker2, [0])  # the new process stores its own chunk in the same slot
    for region, old in zip(worker2.store.regions, old_regions, strict=True):
        region.copy_(old)
    worker2.submit_load(5, chunks, GPULoadStoreSpec([6], [1], [0]))
    assert [r.success for r in worker2.get_finished()] == [False]
    assert "key hidden" in repr(worker2.store.cipher)


def test_plugin_selects_the_encrypting_spec(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    from vllm.engine.arg_utils import EngineArgs

    config = EngineArgs(
        model=str(tiny_model), skip_tokenizer_init=True, max_model_len=512, kv_offloading_size=0.01
    ).create_engine_config()
    extra = config.kv_transfer_config.kv_connector_extra_config
    assert extra["spec_name"] == OFFLOAD_SPEC and extra["spec_module_path"] == OFFLOAD_MODULE
    assert "encrypt_offload" in config.additional_config["pccguard"]["install"]
