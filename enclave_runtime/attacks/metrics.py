"""Extraction metrics: how much closer than the public base an estimate gets to the private weight."""

from __future__ import annotations

import numpy as np


def rel_to_prior(w_hat: np.ndarray, w_true: np.ndarray, w_pub: np.ndarray) -> float:
    """``‖Ŵ−W‖ / ‖W_pub−W‖``: < 1 means the attack beat "just use the public base"."""
    denom = float(np.linalg.norm(w_pub - w_true))
    if denom == 0.0:
        return float("nan")
    return float(np.linalg.norm(w_hat - w_true)) / denom


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.vdot(a.ravel(), b.ravel())) / (na * nb)


def delta_cosine(w_hat: np.ndarray, w_true: np.ndarray, w_pub: np.ndarray) -> float:
    """Cosine of the recovered delta with the private delta (0 when the estimate is the prior)."""
    return cosine(w_hat - w_pub, w_true - w_pub)


def perm_rate(perm_hat: np.ndarray, perm_true: np.ndarray) -> float:
    return float(np.mean(perm_hat == perm_true))


def true_column_perm(w_seen: np.ndarray, w_true: np.ndarray) -> np.ndarray:
    """Evaluation only: which true column each stored column is (|cos| = 1 for a scaled copy)."""
    a = w_seen / np.maximum(np.linalg.norm(w_seen, axis=0, keepdims=True), 1e-300)
    b = w_true / np.maximum(np.linalg.norm(w_true, axis=0, keepdims=True), 1e-300)
    return np.argmax(np.abs(a.T @ b), axis=1)
