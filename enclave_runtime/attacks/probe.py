"""Linear probe: can a linear classifier read a chosen-prompt property off what crosses?

The attacker chooses prompts from two classes (first token A or B), so it knows
each request's label; it trains a ridge classifier on the layer-0 inputs it
saw (position 0 of each request) and tests on held-out requests. Blinded inputs
must score at chance; clear or permuted inputs score near 1 (positive control).
"""

from __future__ import annotations

import math

import numpy as np


def ridge_probe(
    features: np.ndarray, labels: np.ndarray, *, lam: float = 1.0, seed: int = 0
) -> tuple[float, int]:
    """Held-out accuracy of a ridge classifier (half train, half test) and the test size."""
    n = len(labels)
    order = np.random.default_rng(seed).permutation(n)  # the split need not be secret
    train, test = order[: n // 2], order[n // 2 :]
    mu = features[train].mean(axis=0)
    sd = features[train].std(axis=0) + 1e-12
    f = (features - mu) / sd
    t = labels * 2.0 - 1.0
    a = f[train]
    w = (
        np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ t[train])
        if a.shape[0] > a.shape[1]
        else a.T @ np.linalg.solve(a @ a.T + lam * np.eye(a.shape[0]), t[train])
    )
    pred = (f[test] @ w) > 0
    return float(np.mean(pred == (labels[test] > 0.5))), len(test)


def chance_bound(n_test: int, sigmas: float = 4.0) -> float:
    """Accuracy above which a probe is not at chance (binomial, ``sigmas`` standard deviations)."""
    return 0.5 + sigmas * 0.5 / math.sqrt(max(n_test, 1))
