"""Exact arithmetic over the prime field used for one-time-pad blinding.

Why a prime field and not floats: a float mask hides only statistically and
corrupts the result (float GEMMs are not exact), while ``x + r mod p`` with ``r``
uniform in ``F_p`` is a perfect one-time pad and ``(x + r)·W − r·W = x·W`` holds
exactly. Why these numbers:

* Public weights are fixed-point integers per output column and activations
  per token, with ranges chosen from ``d_in`` (:func:`weight_qmax`,
  :func:`act_qmax`) so that ``|x_q·W_q| < p/2``: the plaintext result never
  wraps modulo ``p`` (about 17-bit weights and activations at ``d_in = 4096``).
* ``p = 2^48 − 59`` (the largest prime below ``2^48``) leaves that bound with room
  and lets an element travel in 6 bytes.
* The accelerator multiplies in float64, exact below ``2^53``: the blinded input
  is split into balanced limbs (two of 24 bits for the layer GEMMs) so each
  partial product ``limb·W_q`` stays below ``2^53``. Limbs are stacked as rows
  of one GEMM, so the weights are read once.

Everything here is pure and device-agnostic (torch tensors on any device).
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import torch

P = (1 << 48) - 59
FIELD_BITS = 48
C48 = (1 << 48) - P  # 2^48 ≡ C48 (mod p)
FLOAT64_EXACT = 1 << 53


def _is_probable_prime(n: int) -> bool:
    """Deterministic Miller–Rabin for n < 3.3·10^24 (bases: first 13 primes)."""
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    for b in bases:
        if n % b == 0:
            return n == b
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


assert _is_probable_prime(P), "field modulus must be prime"

#: Blinded inputs split into two balanced limbs of this width (|limb| ≤ 2^23) for d_in < 2^15.
LIMB_BITS = 24
N_LIMBS = 2


def limb_bits(wmax: int, d_in: int) -> int:
    """Widest limb with ``2^b·wmax·d_in < 2^53``; balanced digits stay below ``2^(b−1) + 1 ≤ 2^b``.

    So every float64 partial sum of ``limb · W_q`` is an exact integer.
    """
    b = 0
    while b < FIELD_BITS and (1 << (b + 1)) * wmax * d_in < FLOAT64_EXACT:
        b += 1
    if b < 2:
        raise ValueError(f"weights up to {wmax} with d_in={d_in} cannot be multiplied exactly in float64")
    return b


def weight_qmax(d_in: int) -> int:
    """Per-column weight range for a GEMM of width ``d_in``.

    Half of the bits the field leaves (``p/2 / d_in``), but never so many that
    two limbs of ``LIMB_BITS`` stop being exact: 20 bits at ``d_in = 128``,
    17 at 4096, 14 at 32768.
    """
    if d_in > max_input_dim():
        raise ValueError(f"d_in={d_in} exceeds the exact field GEMM bound {max_input_dim()}")
    balanced = math.isqrt((P // 2) // d_in)
    by_limbs = (FLOAT64_EXACT - 1) // ((1 << LIMB_BITS) * d_in)
    return int(min(balanced, by_limbs, (1 << 24) - 1))


def act_qmax(d_in: int, w_qmax: int) -> int:
    """Per-token activation range: ``act_qmax·w_qmax·d_in < p/2``, so the true product never wraps."""
    return int(min((1 << 23) - 1, (P // 2) // (w_qmax * d_in)))


def max_input_dim() -> int:
    """Largest ``d_in`` that keeps at least 14-bit weights with two exact limbs (65536)."""
    return 1 << 16


# --------------------------------------------------------------------------- fixed point


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-output-column fixed point: ``W ≈ W_q · s_w`` with ``|W_q| ≤ weight_qmax(d_in)``.

    ``w`` is ``[d_in, d_out]``; returns ``(W_q as float64 integers, s_w float64 [d_out], qmax)``.
    Per-column scales keep the relative error small even with outlier columns.
    """
    qmax = weight_qmax(w.shape[0])
    w64 = w.to(torch.float64)
    scale = w64.abs().amax(dim=0) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(w64 / scale), scale, qmax


def quantize_rows(x: torch.Tensor, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (per-token) dynamic fixed point: ``x ≈ x_q · s_x``, ``|x_q| ≤ qmax``; ``x_q`` int64."""
    x64 = x.to(torch.float64)
    scale = x64.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(x64 / scale).to(torch.int64), scale


def lift(v: torch.Tensor) -> torch.Tensor:
    """Field element in ``[0, p)`` → its centred representative in ``(−p/2, p/2]``."""
    return torch.where(v > P // 2, v - P, v)


# --------------------------------------------------------------------------- masks


def random_field(shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform elements of ``F_p`` from the OS CSPRNG (``secrets``), by rejection sampling.

    48-bit draws are rejected when ``≥ p`` (probability 59/2^48) so the result is
    exactly uniform: reducing wider draws modulo ``p`` would bias it.
    """
    n = math.prod(shape)
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        need = n - filled
        raw = np.frombuffer(secrets.token_bytes(need * 6), dtype=np.uint8).reshape(need, 6)
        padded = np.zeros((need, 8), dtype=np.uint8)
        padded[:, :6] = raw
        vals = padded.view("<i8").reshape(need)
        vals = vals[vals < P]
        out[filled : filled + vals.size] = vals
        filled += vals.size
    return torch.from_numpy(out.reshape(shape))


# --------------------------------------------------------------------------- exact GEMM mod p


def _split_limbs(x: torch.Tensor, bits: int, n_limbs: int) -> torch.Tensor:
    """Balanced base-2^bits digits of centred ``x``: ``x = Σ d_k 2^(k·bits)``, ``|d_k| ≤ 2^(bits−1)``."""
    base = 1 << bits
    half = base >> 1
    rest = x.clone()
    digits = []
    for _ in range(n_limbs - 1):
        d = torch.remainder(rest + half, base) - half
        digits.append(d)
        rest = (rest - d) // base
    digits.append(rest)
    return torch.stack(digits)


def _mul_pow2_mod(a: torch.Tensor, bits: int) -> torch.Tensor:
    """``a · 2^bits mod p`` for ``a`` in ``[0, p)``, ``bits < 48``, without int64 overflow."""
    lo_bits = FIELD_BITS - bits
    a1 = a >> lo_bits
    a0 = a & ((1 << lo_bits) - 1)
    return torch.remainder(a1 * C48 + (a0 << bits), P)


def matmul_mod(x: torch.Tensor, w_q: torch.Tensor, wmax: int | None = None) -> torch.Tensor:
    """Exact ``x · W_q mod p`` for ``x`` int64 in ``[0, p)`` (``[n, d_in]``), ``W_q`` float64 integers.

    The centred input is cut into balanced limbs narrow enough that every float64
    partial sum stays below 2^53; the limbs are stacked as rows of one GEMM (the
    weights are read once), then combined modulo ``p`` by an int64 Horner scheme.
    """
    d_in = w_q.shape[0]
    wmax = int(w_q.abs().max().item()) if wmax is None else wmax
    bits = limb_bits(max(wmax, 1), d_in)
    k = max(1, math.ceil(FIELD_BITS / bits))
    limbs = _split_limbs(lift(x), bits, k)  # [k, n, d_in]
    n = x.shape[0]
    z = (limbs.reshape(k * n, -1).to(torch.float64) @ w_q).to(torch.int64).reshape(k, n, -1)
    acc = torch.remainder(z[k - 1], P)
    for i in range(k - 2, -1, -1):
        acc = torch.remainder(_mul_pow2_mod(acc, bits) + torch.remainder(z[i], P), P)
    return acc


# --------------------------------------------------------------------------- Freivalds


#: Products of 16-bit limbs are below 2^32, so 2^21 of them sum below 2^53: exact in float64.
_DOT_CHUNK = 1 << 21


def _dot_mod_rows(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    """Per-row ``Σ a[i, j]·b[j] mod p`` for field elements, exact.

    Both sides are cut into three 16-bit limbs and the nine limb dot products of
    every row come out of one float64 GEMM, exact while each sum stays below
    2^53 (``_DOT_CHUNK`` terms); longer vectors are summed chunk by chunk in
    int64. BLAS runs this in a fraction of the time an int64 ``einsum`` takes,
    and it runs on every offloaded product (the Freivalds check).
    """
    a = a.to("cpu", torch.int64)
    b = b.to("cpu", torch.int64)
    n, d = a.shape
    if d > (1 << 30):
        raise ValueError("vector too long for the exact dot product")
    mask = (1 << 16) - 1
    al = torch.cat([(a >> (16 * i)) & mask for i in range(3)]).to(torch.float64)  # [3n, d], limb-major
    bl = torch.stack([(b >> (16 * j)) & mask for j in range(3)], dim=1).to(torch.float64)  # [d, 3]
    sums = torch.zeros(3 * n, 3, dtype=torch.int64)
    for start in range(0, d, _DOT_CHUNK):
        sums += (al[:, start : start + _DOT_CHUNK] @ bl[start : start + _DOT_CHUNK]).to(torch.int64)
    parts = sums.reshape(3, n, 3).tolist()  # [limb of a, row, limb of b]
    out = []
    for row in range(n):
        total = 0
        for i in range(3):
            for j in range(3):
                total += parts[i][row][j] << (16 * (i + j))
        out.append(total % P)
    return out


def freivalds_vector(d_out: int) -> torch.Tensor:
    """The secret check vector ``s`` (uniform in ``F_p^{d_out}``, CSPRNG)."""
    return random_field((d_out,))


def freivalds_precompute(w_q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``w_s = W_q · s mod p`` (``[d_in]``), computed once in the enclave."""
    wt = w_q.t().contiguous()  # [d_out, d_in]
    return matmul_mod(s.reshape(1, -1), wt).reshape(-1)  # more, narrower limbs when d_out is large


def freivalds_ok(x_blind: torch.Tensor, y_blind: torch.Tensor, s: torch.Tensor, w_s: torch.Tensor) -> bool:
    """``ỹ·s ≡ x̃·(W s)`` row by row; a wrong answer passes with probability ``1/p`` per row."""
    return _dot_mod_rows(y_blind, s) == _dot_mod_rows(x_blind, w_s)
