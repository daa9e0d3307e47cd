"""Least squares from activation pairs: if any (input, output) pair of a private map leaks, fit it."""

from __future__ import annotations

import numpy as np


def fit_linear(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """``argmin ‖X Ŵ − Y‖`` (minimum-norm); ``None`` without any rows."""
    if x.shape[0] == 0:
        return None
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    return np.asarray(w)


def rescale_to_prior(w_fit: np.ndarray, w_pub: np.ndarray) -> np.ndarray:
    """Put a fit made in unknown fixed-point units on the public base's per-column scale."""
    norm = np.maximum(np.linalg.norm(w_fit, axis=0), 1e-300)
    return w_fit * (np.linalg.norm(w_pub, axis=0) / norm)
