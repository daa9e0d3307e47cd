"""Output equivalence: the hybrid executor (real processes) against the transformers reference."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.plan import all_enclave_plan

from .conftest import REPORT, VOCAB, greedy_against_reference


def test_hybrid_matches_reference_over_512_tokens(hybrid: HybridExecutor, reference: Any) -> None:
    rng = random.Random(1234)
    total, worst, distinct = 0, 0.0, set()
    hybrid.precompute(8 * 72)
    misses_before = hybrid.stats()["pool_miss_rows"]
    for _ in range(8):
        prompt = [rng.randrange(VOCAB) for _ in range(rng.randint(3, 9))]
        tokens, err = greedy_against_reference(hybrid, reference, prompt, 64)
        worst = max(worst, err)
        total += len(tokens)
        distinct.update(tokens)
    REPORT.append(
        f"hybrid vs transformers: {total} greedy tokens equal, max relative logit error {worst:.2e}"
    )
    print(f"\nhybrid vs transformers: {total} greedy tokens equal, max relative logit error {worst:.2e}")
    assert total >= 512
    assert worst <= 1e-3
    assert len(distinct) > 10  # the comparison is not a single repeated token
    stats = hybrid.stats()
    assert stats["freivalds_checks"] > 0
    assert stats["pool_miss_rows"] == misses_before  # the online path used only precomputed factors


def test_all_enclave_plan_matches_reference(model_dirs: tuple[Path, Path], reference: Any) -> None:
    with HybridExecutor.start(*model_dirs, plan=all_enclave_plan()) as ex:
        assert ex.pids()["accelerator"] is None  # nothing is offloaded, no accelerator process
        prompt = [9, 8, 7, 6]
        _, err = greedy_against_reference(ex, reference, prompt, 32)
    assert err < 1e-5
