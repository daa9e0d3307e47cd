"""Prior matching (ShadowNet / TransLinkGuard attacks): align stored columns to the public base.

Hungarian assignment on ``|cos|`` between stored and public columns recovers a
column permutation; each matched column is then rescaled to the public
column's norm (per-channel scaling), or by one global ``sqrt(var ratio)``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def match_columns(w_seen: np.ndarray, w_pub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``perm_hat[j]`` = public column matched to stored column ``j``; and the signed cosines."""
    a = w_seen / np.maximum(np.linalg.norm(w_seen, axis=0, keepdims=True), 1e-300)
    b = w_pub / np.maximum(np.linalg.norm(w_pub, axis=0, keepdims=True), 1e-300)
    cos = a.T @ b
    rows, cols = linear_sum_assignment(-np.abs(cos))
    perm = np.empty(w_seen.shape[1], dtype=np.int64)
    perm[rows] = cols
    return perm, cos[np.arange(len(perm)), perm]


def prior_matching(w_seen: np.ndarray, w_pub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimate ``Ŵ`` by un-permuting and rescaling stored columns; returns ``(Ŵ, perm_hat)``."""
    perm, cos = match_columns(w_seen, w_pub)
    w_hat = np.zeros_like(w_pub)
    seen_norm = np.maximum(np.linalg.norm(w_seen, axis=0), 1e-300)
    pub_norm = np.linalg.norm(w_pub, axis=0)
    scale = np.sign(cos + (cos == 0)) * pub_norm[perm] / seen_norm
    w_hat[:, perm] = w_seen * scale
    return w_hat, perm


def prior_matching_rows(w_seen: np.ndarray, w_pub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same on rows (an input-channel permutation and per-row scaling)."""
    w_hat, perm = prior_matching(w_seen.T, w_pub.T)
    return w_hat.T, perm


def prior_matching_both(w_seen: np.ndarray, w_pub: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Alternate column and row matching (a two-sided permutation with scaling)."""
    w_hat = w_seen
    for _ in range(rounds):
        w_hat, _ = prior_matching(w_hat, w_pub)
        w_hat, _ = prior_matching_rows(w_hat, w_pub)
    return w_hat


def global_scale(w_seen: np.ndarray, w_pub: np.ndarray) -> np.ndarray:
    """SOTER attack: one scalar ``θ̂ = sqrt(var(W_seen)/var(W_pub))``."""
    theta = np.sqrt(np.var(w_seen) / max(np.var(w_pub), 1e-300))
    return w_seen / max(theta, 1e-300)
