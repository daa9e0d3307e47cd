"""Decisions from timing samples: a two-sample KS test and a threshold classifier with a 95% interval.

Why both: the KS test answers "do hit probes and fresh controls come from the
same distribution" (sharing detected when p is small); the classifier answers
"how well can an attacker tell them apart per request" -- accuracy near 0.5,
with an interval that contains 0.5, is what no sharing looks like. The
classifier also carries an exact one-sided binomial p-value against chance, so
that a decision taken on it has a stated false-positive rate, as the KS one does.
scipy computes the KS p-value when it is installed; otherwise the asymptotic
Kolmogorov series is used (adequate for the sample sizes the probe takes).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class KsResult:
    statistic: float
    p_value: float
    method: str


@dataclass(frozen=True)
class ClassifierResult:
    accuracy: float
    ci_low: float
    ci_high: float
    n_test: int
    threshold: float
    p_value: float

    def contains_chance(self) -> bool:
        return self.ci_low <= 0.5 <= self.ci_high


def ks_2samp(a: list[float], b: list[float]) -> KsResult:
    """Two-sided two-sample Kolmogorov–Smirnov test."""
    if not a or not b:
        raise ValueError("both samples must be non-empty")
    try:
        from scipy.stats import ks_2samp as scipy_ks

        res = scipy_ks(a, b)
        return KsResult(float(res.statistic), float(res.pvalue), "scipy")
    except ImportError:
        pass
    xs, ys = sorted(a), sorted(b)
    n, m = len(xs), len(ys)
    i = j = 0
    d = 0.0
    while i < n and j < m:
        v = min(xs[i], ys[j])
        while i < n and xs[i] <= v:
            i += 1
        while j < m and ys[j] <= v:
            j += 1
        d = max(d, abs(i / n - j / m))
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    p = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return KsResult(d, min(1.0, max(0.0, p)), "asymptotic")


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_p_value(successes: int, n: int) -> float:
    """P(at least ``successes`` of ``n`` fair coin flips): how often chance alone scores this well."""
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    return sum(math.comb(n, k) for k in range(successes, n + 1)) / (1 << n)


def threshold_classifier(hits: list[float], misses: list[float], seed: int = 0) -> ClassifierResult:
    """Fit "faster than t means hit" on half of each sample, score it on the other half.

    Held-out scoring keeps the accuracy honest: a threshold fitted and scored
    on the same data would beat 0.5 even on identical distributions.
    """
    rng = random.Random(seed)
    h, m = hits[:], misses[:]
    rng.shuffle(h)
    rng.shuffle(m)
    h_train, h_test = h[: len(h) // 2], h[len(h) // 2 :]
    m_train, m_test = m[: len(m) // 2], m[len(m) // 2 :]
    if not h_train or not m_train:
        raise ValueError("need at least two samples of each kind")
    candidates = sorted(set(h_train + m_train))
    best_t, best_acc = candidates[0], -1.0
    total = len(h_train) + len(m_train)
    for t in candidates:
        acc = (sum(x <= t for x in h_train) + sum(x > t for x in m_train)) / total
        if acc > best_acc:
            best_t, best_acc = t, acc
    correct = sum(x <= best_t for x in h_test) + sum(x > best_t for x in m_test)
    n_test = len(h_test) + len(m_test)
    low, high = wilson(correct, n_test)
    return ClassifierResult(correct / n_test, low, high, n_test, best_t, binomial_p_value(correct, n_test))
