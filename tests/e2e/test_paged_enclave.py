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
