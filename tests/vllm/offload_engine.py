"""A real ``EngineCore`` with vLLM's ``OffloadingConnector`` on the CPU test executor.

The test worker of :mod:`tests.vllm.support` gains the connector's worker
side exactly where vLLM's GPU worker and model runner have it:

* ``initialize_from_config``: ``ensure_kv_transfer_initialized`` (the
  process-wide worker connector, what ``get_kv_transfer_group()`` returns)
  and ``register_kv_caches`` with the real paged KV tensors -- which builds
  the offloading worker through the configured spec's ``get_worker``;
* ``execute_model``: the connector lifecycle of ``KVConnectorModelRunnerMixin``
  around each step (bind metadata, start transfers, defer stores, collect
  finished jobs into ``kv_connector_output``), and ``handle_preemptions``
  before it, as ``GPUModelRunner.execute_model`` does.

Offloading itself -- ``OffloadingConnector``, its scheduler, the manager, the
spec and the worker it builds -- is vLLM's (or pccguard's encrypting spec when
the plugin selects it).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vllm.distributed.kv_transfer import get_kv_transfer_group, has_kv_transfer_group
from vllm.distributed.kv_transfer.kv_transfer_state import (
    ensure_kv_transfer_initialized,
    ensure_kv_transfer_shutdown,
)
from vllm.forward_context import set_forward_context
from vllm.v1.worker.kv_connector_model_runner_mixin import KVConnectorModelRunnerMixin

from pccguard.enforcement.sealing import OVERHEAD
from tests.vllm.support import CpuTestExecutor, CpuTestWorker, make_engine

#: Host memory for offloaded KV, GiB: about 130 chunks of this test model's 2-layer blocks.
OFFLOAD_GIB = 0.001


def _kv_device() -> str:
    from vllm.platforms import current_platform

    return "cuda" if current_platform.is_cuda_alike() else "cpu"


#: Where the test worker's paged KV lives: the CPU here; an accelerator where vLLM's platform has one.
KV_DEVICE = _kv_device()
#: Whether vLLM builds its own ``CPUOffloadingWorker`` on this platform (CUDA-alike and XPU only).
PLAIN_WORKER_SUPPORTED = KV_DEVICE != "cpu"
PLAIN_WORKER_SKIP = (
    "vLLM's CPUOffloadingWorker (the plugin-off offload store) is built only on CUDA-alike and XPU "
    "platforms; this platform refuses it at KV registration"
)


def _one_rank_world(vllm_config: Any) -> None:
    """vLLM's process groups for a single rank over gloo (the connector reads its rank and TP group from them).

    Set up once per process, as vLLM's CPU worker does in ``init_device``.
    """
    from vllm.config import set_current_vllm_config
    from vllm.distributed.parallel_state import model_parallel_is_initialized
    from vllm.v1.worker.gpu_worker import init_worker_distributed_environment

    if model_parallel_is_initialized():
        return
    handle, rendezvous = tempfile.mkstemp(prefix="vllm-dist-")
    os.close(handle)
    os.unlink(rendezvous)
    with set_current_vllm_config(vllm_config):
        init_worker_distributed_environment(
            vllm_config, rank=0, distributed_init_method=f"file://{rendezvous}", local_rank=0, backend="gloo"
        )


class OffloadTestWorker(CpuTestWorker):
    """The CPU test worker with the KV connector's worker side, as vLLM's GPU worker has it."""

    def __init__(self, vllm_config: Any) -> None:
        super().__init__()
        self.vllm_config = vllm_config

    def initialize_from_config(self, kv_cache_configs: Any) -> None:
        config = kv_cache_configs[0] if isinstance(kv_cache_configs, list) else kv_cache_configs
        _one_rank_world(self.vllm_config)
        ensure_kv_transfer_initialized(self.vllm_config, config)
        super().initialize_from_config(kv_cache_configs)
        if KV_DEVICE != "cpu":  # vLLM's own offloading worker copies from accelerator memory only
            context = self.model_runner.compilation_config.static_forward_context
            for name, tensor in list(self.kv_caches.items()):
                self.kv_caches[name] = context[name].kv_cache = tensor.to(KV_DEVICE)
        if has_kv_transfer_group():
            get_kv_transfer_group().register_kv_caches(self.kv_caches)

    def get_kv_connector_handshake_metadata(self) -> Any:
        from vllm.v1.worker.gpu_worker import Worker

        return Worker.get_kv_connector_handshake_metadata(self)

    def execute_model(self, so: Any) -> Any:
        if not has_kv_transfer_group():
            return super().execute_model(so)
        get_kv_transfer_group().handle_preemptions(so.kv_connector_metadata)
        with (
            set_forward_context(None, self.vllm_config),
            KVConnectorModelRunnerMixin.maybe_get_kv_connector_output(so) as kv_output,
        ):
            out = super().execute_model(so)
        out.kv_connector_output = kv_output
        return out

    def close(self) -> None:
        ensure_kv_transfer_shutdown()


class OffloadTestExecutor(CpuTestExecutor):
    def make_worker(self) -> OffloadTestWorker:
        return OffloadTestWorker(self.vllm_config)


def make_offload_engine(model: Path, **overrides: Any) -> Any:
    """A real EngineCore offloading through vLLM's ``--kv-offloading-size`` (native ``OffloadingConnector``)."""
    ensure_kv_transfer_shutdown()  # a connector left by an engine that failed to start is not reused
    args: dict[str, Any] = {
        "kv_offloading_size": OFFLOAD_GIB,
        "distributed_executor_backend": OffloadTestExecutor,
        **overrides,
    }
    return make_engine(model, **args)


def offloading_worker() -> Any:
    """The offloading worker the connector of this process built (``get_kv_transfer_group()``)."""
    return get_kv_transfer_group().connector_worker.worker


def host_regions(worker: Any) -> list[Any]:
    """The host tensors an offloading worker keeps chunks in: the offload store's bytes at rest."""
    store = getattr(worker, "store", None)
    if store is not None:  # pccguard's EncryptedOffloadingWorker
        return list(store.regions)
    return list(worker._store_handler.dst_tensors)  # vLLM's CPUOffloadingWorker


def dump_host_regions(worker: Any, path: Path) -> Path:
    """Write the host region as a crash dump would hold it: the raw bytes of every region tensor."""
    with open(path, "wb") as handle:
        for region in host_regions(worker):
            handle.write(region.contiguous().view(torch.uint8).numpy().tobytes())
    return path


def plant(engine: Any, block_ids: list[int], payload: bytes) -> None:
    """Write ``payload`` at the start of each block's page in every layer (as a model writes KV into it)."""
    worker = engine.model_executor.worker
    data = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    for kv in worker.kv_caches.values():
        for block in block_ids:
            kv[block].view(-1).view(torch.uint8)[: len(payload)].copy_(data.to(kv.device))


def dump_blocks(engine: Any, block_ids: list[int], path: Path) -> Path:
    """The raw bytes of these blocks in every layer: what a store path reads out of the KV cache."""
    worker = engine.model_executor.worker
    with open(path, "wb") as handle:
        for kv in worker.kv_caches.values():
            for block in block_ids:
                handle.write(kv[block].contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return path


class PlaintextCipher:
    """A broken offload cipher: "seals" by copying the plaintext into the slot (the nonce and tag stay zero)."""

    def seal_into(self, out: Any, plaintext: Any, *context: Any) -> None:
        target = memoryview(out).cast("B")
        data = memoryview(plaintext).cast("B")
        target[: len(data)] = data
        target[len(data) :] = bytes(len(target) - len(data))

    def open(self, blob: Any, *context: Any) -> bytes:
        raw = memoryview(blob).tobytes()
        return raw[: len(raw) - OVERHEAD]


class UnauthenticatedCipher:
    """A broken offload cipher: a keystream XOR without a tag, so ciphertext at rest but any bit flip is accepted."""

    def __init__(self) -> None:
        self._pads: dict[int, bytes] = {}

    def _pad(self, n: int) -> Any:
        if n not in self._pads:
            self._pads[n] = secrets.token_bytes(n)
        return np.frombuffer(self._pads[n], dtype=np.uint8)

    def seal_into(self, out: Any, plaintext: Any, *context: Any) -> None:
        target = np.frombuffer(memoryview(out).cast("B"), dtype=np.uint8)
        data = np.frombuffer(memoryview(plaintext).cast("B"), dtype=np.uint8)
        target[: data.size] = data ^ self._pad(data.size)
        target[data.size :] = 0

    def open(self, blob: Any, *context: Any) -> bytes:
        raw = np.frombuffer(memoryview(blob).tobytes(), dtype=np.uint8)[:-OVERHEAD]
        return bytes(raw ^ self._pad(raw.size))


def shutdown(engine: Any) -> None:
    engine.shutdown()
    ensure_kv_transfer_shutdown()
