"""encrypt_offload's self-test on a real EngineCore offloading through vLLM's ``OffloadingConnector``.

The check drives the offloading worker the connector built (pccguard's
encrypting worker with the plugin, vLLM's ``CPUOffloadingWorker`` without it):
it passes only when the canary is ciphertext at rest, loads back intact and
a flipped bit is refused. Each way the store can fail is shown failing it on
the same live engine: a store that writes plaintext (the plugin off, or a
sealing replaced by a copy) and one that does not authenticate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pccguard.adapters.vllm.runtime.offload import EncryptedOffloadingWorker
from pccguard.adapters.vllm.runtime.selftest_offload import check_encrypt_offload
from pccguard.enforcement.selftest import Evidence, SelfTestFailed, run_check
from tests.vllm.offload_engine import (
    PLAIN_WORKER_SKIP,
    PLAIN_WORKER_SUPPORTED,
    PlaintextCipher,
    UnauthenticatedCipher,
    host_regions,
    make_offload_engine,
    offloading_worker,
    shutdown,
)
from tests.vllm.support import add, request, run_until_idle, salt_for

BASELINE = "profile: multi-tenant-baseline\n"
DISABLED = "enabled: false\n"


@pytest.fixture
def plugin_engine(tiny_model: Path, plugin_config: Any) -> Iterator[Any]:
    plugin_config(BASELINE)
    engine = make_offload_engine(tiny_model)
    yield engine
    shutdown(engine)


def _state(engine: Any) -> dict[str, Any]:
    """Everything the check may touch: KV tensors, host regions and store counters, both reservations."""
    worker = offloading_worker()
    manager = engine.scheduler.connector.connector_scheduler.manager
    return {
        "kv": [t.clone() for t in engine.model_executor.worker.kv_caches.values()],
        "host": [r.clone() for r in host_regions(worker)],
        "versions": dict(getattr(getattr(worker, "store", None), "_versions", {})),
        "free_blocks": engine.scheduler.kv_cache_manager.block_pool.get_num_free_blocks(),
        "free_chunks": manager._get_num_free_chunks(),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    tensors = all(torch.equal(x, y) for key in ("kv", "host") for x, y in zip(a[key], b[key], strict=True))
    return tensors and all(a[k] == b[k] for k in ("versions", "free_blocks", "free_chunks"))


def test_encrypting_worker_passes_and_leaves_serving_state_as_it_was(plugin_engine: Any) -> None:
    assert isinstance(offloading_worker(), EncryptedOffloadingWorker)
    before = _state(plugin_engine)
    evidence = check_encrypt_offload(plugin_engine)
    assert isinstance(evidence, Evidence) and evidence.checked
    assert evidence.blocks > 0 and evidence.layers > 0 and evidence.ranks == 1
    assert evidence.device == "cpu"
    assert _same(before, _state(plugin_engine)), "the self-test left KV, host or reservation state changed"
    # the engine still serves and offloads through the same worker afterwards
    add(
        plugin_engine,
        request("after", list(range(300, 340)), salt=salt_for(plugin_engine, "t"), max_tokens=2),
    )
    run_until_idle(plugin_engine)
    assert offloading_worker().store._versions, "the request's blocks were never offloaded"
    # as a recorded self-test
    record = run_check("encrypt_offload", lambda: check_encrypt_offload(plugin_engine))
    assert record.passed and record.blocks == evidence.blocks and record.layers == evidence.layers


def test_a_store_that_writes_plaintext_fails(plugin_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection in the engine process: the encrypting worker's sealing replaced by a plain copy."""
    worker = offloading_worker()
    monkeypatch.setattr(worker.store, "cipher", PlaintextCipher())
    before = _state(plugin_engine)
    with pytest.raises(SelfTestFailed, match="found in plaintext at rest"):
        check_encrypt_offload(plugin_engine)
    assert _same(before, _state(plugin_engine)), "a failed self-test must still restore what it touched"


def test_a_store_that_does_not_authenticate_fails(
    plugin_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ciphertext at rest and a correct round trip are not enough: a flipped bit must be refused."""
    worker = offloading_worker()
    monkeypatch.setattr(worker.store, "cipher", UnauthenticatedCipher())
    with pytest.raises(SelfTestFailed, match="one bit flipped was loaded"):
        check_encrypt_offload(plugin_engine)


def test_vllm_plain_offloading_is_refused_on_this_platform(tiny_model: Path, plugin_config: Any) -> None:
    """Where vLLM has no plain offloading worker, there is no plaintext host store: the engine cannot start."""
    if PLAIN_WORKER_SUPPORTED:
        pytest.skip("vLLM builds its CPUOffloadingWorker on this platform (see the next test)")
    plugin_config(DISABLED)
    with pytest.raises(Exception, match="CPU Offloading is currently only supported on CUDA-alike"):
        make_offload_engine(tiny_model)


@pytest.mark.skipif(not PLAIN_WORKER_SUPPORTED, reason=PLAIN_WORKER_SKIP)
def test_vllm_plain_offloading_worker_fails_naming_plaintext(tiny_model: Path, plugin_config: Any) -> None:
    """The control: vLLM's own spec (plugin off) stores KV pages verbatim, so the canary is found at rest."""
    from vllm.v1.kv_offload.cpu.gpu_worker import CPUOffloadingWorker

    plugin_config(DISABLED)
    engine = make_offload_engine(tiny_model)
    try:
        assert isinstance(offloading_worker(), CPUOffloadingWorker)
        before = _state(engine)
        with pytest.raises(SelfTestFailed, match="found in plaintext at rest"):
            check_encrypt_offload(engine)
        assert _same(before, _state(engine))
    finally:
        shutdown(engine)
