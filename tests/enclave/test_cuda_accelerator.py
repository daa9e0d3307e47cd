"""The accelerator process on a real GPU: exact field products and equal greedy tokens.

Blinding is only sound if the accelerator's products are exact: one wrong bit
and the enclave's unblinding yields garbage (or Freivalds refuses the step). The
CPU proves exactness in every other test; these tests prove it on CUDA, where
cuBLAS picks its own kernels and summation order. They need a CUDA device and
are skipped without one (the CI machine has none); ``docs/enclave.md`` records
the GPU run.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from pccguard.enclave_runtime import field as F
from pccguard.enclave_runtime.executor import HybridExecutor

from .conftest import REPORT, VOCAB, greedy_against_reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _exact_rows(x: torch.Tensor, w: torch.Tensor, rows: int) -> list[list[int]]:
    """``x · w mod p`` for the first ``rows`` rows in Python integers: the ground truth."""
    xs = x[:rows].tolist()
    ws = [[int(v) for v in col] for col in w.t().tolist()]
    return [[sum(a * b for a, b in zip(row, col, strict=True)) % F.P for col in ws] for row in xs]


@pytest.mark.parametrize("d_in", [1024, 2816, 4096])
def test_field_matmul_on_cuda_is_exact(d_in: int) -> None:
    wmax = F.weight_qmax(d_in)  # the runtime's own weight range for this width: the limbs' bound
    gen = torch.Generator().manual_seed(d_in)
    x = torch.randint(0, F.P, (8, d_in), generator=gen, dtype=torch.int64)
    w = torch.randint(-wmax, wmax + 1, (d_in, 64), generator=gen, dtype=torch.int64).to(torch.float64)
    w[0, 0] = wmax  # the largest weight sets the limb width: make it the bound itself
    x[0], x[1] = F.P // 2, F.P // 2 + 1  # and the largest inputs once centred, of both signs

    on_gpu = F.matmul_mod(x.cuda(), w.cuda(), wmax).cpu()
    on_cpu = F.matmul_mod(x, w, wmax)
    assert torch.equal(on_gpu, on_cpu)
    assert on_gpu[:2].tolist() == _exact_rows(x, w, 2)

    # Control: the same product without the limb split (float64 on whole field
    # elements) is not exact on the GPU, so the equality above has teeth.
    naive = torch.remainder(x.cuda().to(torch.float64) @ w.cuda(), float(F.P)).to(torch.int64).cpu()
    assert not torch.equal(naive, on_cpu)


def test_hybrid_with_gpu_accelerator_matches_reference(model_dirs: tuple[Path, Path], reference: Any) -> None:
    rng = random.Random(99)
    with HybridExecutor.start(*model_dirs, device="cuda", timeout_s=120) as ex:
        assert ex.ready["accelerator_device"].startswith("cuda")
        total = 0
        for _ in range(4):
            prompt = [rng.randrange(VOCAB) for _ in range(rng.randint(3, 9))]
            tokens, err = greedy_against_reference(ex, reference, prompt, 32)
            assert err <= 1e-3
            total += len(tokens)
        stats = ex.stats()
    assert stats["freivalds_checks"] > 0  # every offloaded product was checked, and all passed
    REPORT.append(f"GPU accelerator ({torch.cuda.get_device_name(0)}): {total} greedy tokens equal")
