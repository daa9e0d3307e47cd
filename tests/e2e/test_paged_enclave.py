"""The paged enclave protocol on its own (no vLLM): block tables, chunking, zeroing, hostile input.

The enclave must compute the same greedy tokens over scattered blocks and
arbitrary chunk boundaries as over its contiguous per-request buffer, and must
answer malformed steps (block ids outside the cache, tables too short, token
ids outside the vocabulary) with an error while staying alive.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pccguard.enclave_runtime.errors import EnclaveRuntimeError
from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.plan import all_enclave_plan
from pccguard.enclave_runtime.vllm_executor.client import PagedEnclave

BLOCK = 4
BLOCKS = 24


@pytest.fixture(scope="module")
def enclave(tiny_llama: Path) -> Iterator[PagedEnclave]:
    with PagedEnclave(tiny_llama, plan=all_enclave_plan(), debug_inspect=True) as pe:
        pe.verify()
        pe.init_kv(BLOCKS, BLOCK)
        yield pe


def _greedy(
    pe: PagedEnclave, prompt: list[int], blocks: list[int], chunks: list[int], max_new: int
) -> list[int]:
    start, out = 0, []
    for n in chunks:
        last = start + n == len(prompt)
        out += pe.step(
            [{"n": n, "start": start, "blocks": blocks, "sample": last}], prompt[start : start + n]
        )
        start += n
    while len(out) < max_new:
        pos = len(prompt) + len(out) - 1
        out += pe.step([{"n": 1, "start": pos, "blocks": blocks, "sample": True}], [out[-1]])
    return out


def test_scattered_blocks_and_chunks_equal_contiguous(enclave: PagedEnclave, tiny_llama: Path) -> None:
    rng = random.Random(1)
    prompt = [rng.randrange(3, 500) for _ in range(21)]
    with HybridExecutor.start(tiny_llama, plan=all_enclave_plan(), timeout_s=60) as ex:
        want = ex.generate(prompt, 8).tokens
    blocks = rng.sample(range(BLOCKS), 8)
    assert _greedy(enclave, prompt, blocks, [5, 9, 7], 8) == want
    enclave.zero_blocks(blocks)
    assert _greedy(enclave, prompt, blocks[::-1], [21], 8) == want


def test_step_zeroes_before_compute(enclave: PagedEnclave) -> None:
    enclave.step([{"n": 6, "start": 0, "blocks": [2, 3], "sample": True}], [5, 6, 7, 8, 9, 10])
    assert enclave.block_nonzero(2) and enclave.block_nonzero(3)
    enclave.step([], [], zero=[2, 3])
    assert not enclave.block_nonzero(2) and not enclave.block_nonzero(3)


def test_residue_query_names_the_blocks_holding_data_and_nothing_else(enclave: PagedEnclave) -> None:
    """What vLLM's residue sampler asks the enclave: one bit per named block, no values."""
    enclave.zero_blocks(list(range(BLOCKS)))
    assert enclave.kv_residue([4, 5, 6]) == []  # control: zeroed blocks hold nothing
    enclave.step([{"n": 6, "start": 0, "blocks": [4, 5], "sample": True}], [5, 6, 7, 8, 9, 10])
    assert enclave.kv_residue([6, 5, 4, 5]) == [4, 5]  # the written blocks, once each, in order
    enclave.step([], [], zero=[4])
    assert enclave.kv_residue([4, 5, 6]) == [5]
    with pytest.raises(EnclaveRuntimeError):
        enclave.kv_residue([BLOCKS])
    enclave.zero_blocks([5])
    assert enclave.kv_residue(list(range(BLOCKS))) == []


@pytest.mark.parametrize(
    ("req", "ids"),
    [
        ({"n": 2, "start": 0, "blocks": [BLOCKS], "sample": True}, [5, 6]),  # block outside the cache
        ({"n": 2, "start": 0, "blocks": [-1], "sample": True}, [5, 6]),
        ({"n": 6, "start": 0, "blocks": [1], "sample": True}, [5] * 6),  # table shorter than the request
        ({"n": 2, "start": 0, "blocks": [1], "sample": True}, [5, 10**6]),  # token outside the vocabulary
        ({"n": 3, "start": 0, "blocks": [1], "sample": True}, [5, 6]),  # count mismatch
    ],
)
def test_malformed_steps_are_refused_and_the_enclave_survives(
    enclave: PagedEnclave, req: dict[str, object], ids: list[int]
) -> None:
    with pytest.raises(EnclaveRuntimeError, match="bad_request"):
        enclave.step([req], ids)
    assert enclave.kv_stats()["num_blocks"] == BLOCKS


def test_zeroing_rejects_ids_outside_the_cache(enclave: PagedEnclave) -> None:
    with pytest.raises(EnclaveRuntimeError):
        enclave.zero_blocks([BLOCKS + 5])
    assert enclave.kv_stats()["num_blocks"] == BLOCKS


def test_seeded_sampling_is_reproducible(enclave: PagedEnclave) -> None:
    req = {"n": 4, "start": 0, "blocks": [6], "sample": True, "temperature": 1.5}
    draws = {tuple(enclave.step([req | {"seed": 42}], [5, 6, 7, 8])) for _ in range(3)}
    assert len(draws) == 1
    spread = {enclave.step([req | {"seed": s}], [5, 6, 7, 8])[0] for s in range(12)}
    assert len(spread) > 1, "temperature 1.5 should not always pick one token"


def _wait_for_pool(pe: PagedEnclave, want: int, timeout_s: float = 60.0) -> dict[str, object]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        stats = pe.kv_stats()
        if int(stats["mask_pool_tokens"]) >= want or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def test_idle_enclave_precomputes_masks_and_requests_use_them(tiny_llama: Path) -> None:
    """The offline phase runs while the host is idle: a prefill then needs no online mask product.

    Control: without a pool the same step computes every mask online; tokens are equal either way.
    """
    from pccguard.enclave_runtime.plan import default_plan

    rng = random.Random(4)
    prompt = [rng.randrange(3, 500) for _ in range(12)]
    blocks = list(range(4))
    results = {}
    for budget in (0, 8 << 20):
        with PagedEnclave(tiny_llama, plan=default_plan(), mask_pool_bytes=budget) as pe:
            pe.init_kv(BLOCKS, BLOCK)
            stats = _wait_for_pool(pe, len(prompt)) if budget else pe.kv_stats()
            before = int(stats["mask_pool_miss_rows"])
            tokens = _greedy(pe, prompt, blocks, [12], 3)
            after = pe.kv_stats()
            results[budget] = (tokens, int(after["mask_pool_miss_rows"]) - before, stats)
            if budget:
                assert int(stats["mask_pool_target"]) >= len(prompt)
                refilled = _wait_for_pool(pe, int(stats["mask_pool_target"]))
                assert int(refilled["mask_pool_tokens"]) == int(stats["mask_pool_target"]), (
                    "refilled when idle"
                )
    assert results[0][1] > 0, "control: without a pool the masks are computed online"
    assert results[8 << 20][1] == 0, "with an idle refill the prefill and decode found their masks ready"
    assert results[0][0] == results[8 << 20][0]
