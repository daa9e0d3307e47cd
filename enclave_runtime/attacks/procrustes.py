"""Orthogonal Procrustes: undo an unknown rotation (or permutation) of the stored columns."""

from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes


def procrustes(w_seen: np.ndarray, w_pub: np.ndarray) -> np.ndarray:
    """``Ŵ = W_seen·Q`` with ``Q = argmin_{QᵀQ=I} ‖W_seen Q − W_pub‖``, then per-column norm rescale."""
    q, _ = orthogonal_procrustes(w_seen, w_pub)
    w_rot = w_seen @ q
    norm = np.maximum(np.linalg.norm(w_rot, axis=0), 1e-300)
    return w_rot * (np.linalg.norm(w_pub, axis=0) / norm)
