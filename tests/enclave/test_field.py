"""The prime-field one-time pad: exactness, mask quality, Freivalds, and the wire format."""

from __future__ import annotations

import pytest
import torch

from pccguard.enclave_runtime import codec
from pccguard.enclave_runtime import field as F


@pytest.mark.parametrize("d_in", [64, 2816, 11008])
def test_blinded_product_is_exact(d_in: int) -> None:
    torch.manual_seed(d_in)
    w = torch.randn(d_in, 24) * 0.02
    w_q, s_w, w_qmax = F.quantize_weight(w)
    x = torch.randn(3, d_in)
    x_q, s_x = F.quantize_rows(x, F.act_qmax(d_in, w_qmax))
    r = F.random_field((3, d_in))
    x_blind = torch.remainder(x_q + r, F.P)
    y_blind = F.matmul_mod(x_blind, w_q)
    # against Python's unbounded integers
    xs, ws = x_blind.tolist(), w_q.long().tolist()
    for j in range(3):
        assert y_blind[0, j].item() == sum(xs[0][k] * ws[k][j] for k in range(d_in)) % F.P
    y_q = F.lift(torch.remainder(y_blind - F.matmul_mod(r, w_q), F.P))
    assert torch.equal(y_q.double(), x_q.double() @ w_q)  # no wrap: the plaintext product exactly
    y = y_q.double() * s_x * s_w
    ref = x.double() @ w.double()
    assert float((y - ref).abs().max() / ref.abs().max()) < 1e-4


def test_field_parameters_hold_for_llama_widths() -> None:
    assert F.P == 2**48 - 59
    for d_in in (4096, 11008, 28672):
        w_qmax = F.weight_qmax(d_in)
        assert F.act_qmax(d_in, w_qmax) * w_qmax * d_in < F.P // 2
        assert 2 ** F.limb_bits(w_qmax, d_in) * w_qmax * d_in < 2**53
        assert F.limb_bits(w_qmax, d_in) >= 24  # two limbs
    with pytest.raises(ValueError):
        F.weight_qmax(1 << 17)


def test_masks_are_uniform_and_fresh() -> None:
    r = F.random_field((64, 512))
    assert int(r.min()) >= 0 and int(r.max()) < F.P
    assert r.unique().numel() == r.numel()  # 2^48 space: a repeat would mean a broken generator
    mean = r.double().mean().item() / F.P
    assert abs(mean - 0.5) < 0.01
    assert not torch.equal(F.random_field((4,)), F.random_field((4,)))


def test_freivalds_catches_a_wrong_product() -> None:
    w_q, _, _ = F.quantize_weight(torch.randn(128, 40))
    s = F.freivalds_vector(40)
    w_s = F.freivalds_precompute(w_q, s)
    x = F.random_field((2, 128))
    y = F.matmul_mod(x, w_q)
    assert F.freivalds_ok(x, y, s, w_s)
    bad = y.clone()
    bad[1, 7] = (bad[1, 7] + 1) % F.P
    assert not F.freivalds_ok(x, bad, s, w_s)


@pytest.mark.parametrize("chunk", [None, 999])
def test_exact_dot_products_match_python_integers(chunk: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Freivalds dot products are exact over the LM head's width, worst-case limbs included."""
    if chunk is not None:  # several float64 chunks summed in int64: the path of very long vectors
        monkeypatch.setattr(F, "_DOT_CHUNK", chunk)
    a = F.random_field((3, 32000))
    b = F.random_field((32000,))
    a[2] = F.P - 1  # every limb of every element at its largest
    b[:100] = F.P - 1
    want = [sum(x * y for x, y in zip(row, b.tolist(), strict=True)) % F.P for row in a.tolist()]
    assert F._dot_mod_rows(a, b) == want
    # Control: one unit off in one element changes exactly that row's result.
    a[1, 12345] = (a[1, 12345] + 1) % F.P
    got = F._dot_mod_rows(a, b)
    assert got[0] == want[0] and got[2] == want[2] and got[1] == (want[1] + int(b[12345])) % F.P


def test_codec_round_trip_and_rejections() -> None:
    msg = codec.Message(
        "gemm", {"layer": 1}, {"x": F.random_field((2, 5)), "f": torch.randn(3)}, frozenset({"x"})
    )
    blob = codec.encode(msg)
    back = codec.decode(blob)
    assert torch.equal(back.tensors["x"], msg.tensors["x"]) and torch.equal(
        back.tensors["f"], msg.tensors["f"]
    )
    assert back.field_names == {"x"} and msg.nbytes() == 2 * 5 * 6 + 3 * 4
    with pytest.raises(codec.WireError):
        codec.decode(blob[:-1])
    with pytest.raises(codec.WireError):
        codec.decode(blob + b"\0")
    too_big = codec.encode(codec.Message("r", {}, {"y": torch.tensor([F.P + 1])}, frozenset({"y"})))
    with pytest.raises(codec.WireError, match="outside the field"):
        codec.decode(too_big)
