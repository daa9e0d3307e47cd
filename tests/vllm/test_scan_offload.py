"""``pccguard scan`` on vLLM's host offload store, dumped as a crash dump would hold it.

A request runs on a real EngineCore offloading through vLLM's
``OffloadingConnector``; after its prefill the canary (text, token ids as
int32 and int64) is written into its KV blocks, as the model writes KV, and
the connector's normal store path offloads those blocks at the next steps.
The host region is then dumped raw and scanned by the ``pccguard`` CLI in a
subprocess. With the plugin the dump holds no canary; the positive controls
are the KV pages the store read (the canary is there in the clear), the same
run with the sealing replaced by a plain copy, and -- where vLLM has one --
its own plain offloading worker.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.vllm.offload_engine import (
    PLAIN_WORKER_SKIP,
    PLAIN_WORKER_SUPPORTED,
    PlaintextCipher,
    dump_blocks,
    dump_host_regions,
    make_offload_engine,
    offloading_worker,
    plant,
    shutdown,
)
from tests.vllm.support import BLOCK_SIZE, add, request, run_until_idle, salt_for

BASELINE = "profile: multi-tenant-baseline\n"
DISABLED = "enabled: false\n"
#: Every shape the canary is planted in, as ``pccguard scan`` names them.
PLANTED = {"utf-8", "token-ids-int32", "token-ids-int64"}


@pytest.fixture
def canary() -> tuple[str, list[int]]:
    text = f"pccguard-canary-{secrets.token_hex(16)}"
    ids = [2**20 + secrets.randbelow(2**30) for _ in range(8)]
    return text, ids


def _payload(text: str, ids: list[int]) -> bytes:
    return (
        text.encode("utf-8") + np.asarray(ids, dtype="<i4").tobytes() + np.asarray(ids, dtype="<i8").tobytes()
    )


def _scan(path: Path, text: str, ids: list[int]) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pccguard.cli",
            "scan",
            str(path),
            "--canary",
            text,
            "--canary-ids",
            ",".join(map(str, ids)),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _shapes(report: dict[str, Any]) -> set[str]:
    return {f["encoding"] for f in report["findings"]}


def _offload_a_canary(engine: Any, tmp_path: Path, canary: tuple[str, list[int]]) -> tuple[Path, Path]:
    """Run one request with the canary in its KV; return dumps of its planted blocks and of the host region."""
    text, ids = canary
    prompt = list(range(300, 300 + 2 * BLOCK_SIZE))  # two full blocks: both are offloaded
    add(engine, request("victim", prompt, salt=salt_for(engine, "victim"), max_tokens=3))
    engine.step()  # the prefill: the model has written the prompt's KV
    manager = engine.scheduler.kv_cache_manager
    blocks = [b.block_id for b in manager.get_blocks("victim").blocks[0] if not b.is_null][:2]
    assert len(blocks) == 2
    plant(engine, blocks, _payload(text, ids))
    kv_dump = dump_blocks(engine, blocks, tmp_path / "kv-blocks.bin")
    run_until_idle(engine)  # the connector stores the blocks at the next step's start
    return kv_dump, dump_host_regions(offloading_worker(), tmp_path / "host-offload.bin")


@pytest.fixture
def plugin_engine(tiny_model: Path, plugin_config: Any) -> Iterator[Any]:
    plugin_config(BASELINE)
    engine = make_offload_engine(tiny_model)
    yield engine
    shutdown(engine)


def test_encrypted_host_store_holds_no_canary(
    plugin_engine: Any, tmp_path: Path, canary: tuple[str, list[int]]
) -> None:
    kv_dump, host_dump = _offload_a_canary(plugin_engine, tmp_path, canary)
    # positive control: the KV pages the store path read hold the canary in every planted shape
    found, report = _scan(kv_dump, *canary)
    assert found == 1 and _shapes(report) == PLANTED
    stored = {chunk for _, chunk in offloading_worker().store._versions}
    assert len(stored) >= 2, "the connector did not offload the request's blocks"
    clean, report = _scan(host_dump, *canary)
    assert clean == 0 and report["findings"] == [] and report["outcome"] == "clean"
    assert report["scanned"]["bytes"] == host_dump.stat().st_size


def test_a_plaintext_host_store_is_found(
    plugin_engine: Any, tmp_path: Path, canary: tuple[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positive control on the same store layout: the encrypting worker's sealing replaced by a plain copy."""
    monkeypatch.setattr(offloading_worker().store, "cipher", PlaintextCipher())
    _, host_dump = _offload_a_canary(plugin_engine, tmp_path, canary)
    found, report = _scan(host_dump, *canary)
    assert found == 1 and _shapes(report) == PLANTED
    assert canary[0] not in json.dumps(report)  # the report names the canary, never shows it


@pytest.mark.skipif(not PLAIN_WORKER_SUPPORTED, reason=PLAIN_WORKER_SKIP)
def test_vllm_plain_host_store_holds_the_canary(
    tiny_model: Path, plugin_config: Any, tmp_path: Path, canary: tuple[str, list[int]]
) -> None:
    """The control: vLLM's own offloading (plugin off) copies KV pages verbatim into host memory."""
    plugin_config(DISABLED)
    engine = make_offload_engine(tiny_model)
    try:
        _, host_dump = _offload_a_canary(engine, tmp_path, canary)
    finally:
        shutdown(engine)
    found, report = _scan(host_dump, *canary)
    assert found == 1 and _shapes(report) == PLANTED
