"""Output equivalence: the hybrid executor (real processes) against the transformers reference."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.plan import all_enclave_plan
from pccguard.enclave_runtime.synthetic import reference_greedy

from .conftest import REPORT, VOCAB


def _rel_err(logits: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((logits - ref).abs().amax(-1) / ref.abs().amax(-1)).max())


def test_hybrid_matches_reference_over_512_tokens(hybrid: HybridExecutor, reference: Any) -> None:
    rng = random.Random(1234)
    total, worst, distinct = 0, 0.0, set()
    hybrid.precompute(8 * 72)
    misses_before = hybrid.stats()["pool_miss_rows"]
    for _ in range(8):
        prompt = [rng.randrange(VOCAB) for _ in range(rng.randint(3, 9))]
        out = hybrid.generate(prompt, 64, return_logits=True)
        ref_tokens, ref_logits = reference_greedy(reference, prompt, 64)
        assert out.tokens == ref_tokens
        assert out.logits is not None
        worst = max(worst, _rel_err(out.logits, ref_logits))
        total += len(out.tokens)
        distinct.update(out.tokens)
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
        out = ex.generate(prompt, 32, return_logits=True)
    ref_tokens, ref_logits = reference_greedy(reference, prompt, 32)
    assert out.tokens == ref_tokens
    assert out.logits is not None and _rel_err(out.logits, ref_logits) < 1e-5
