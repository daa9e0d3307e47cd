"""The one sealing format: AES-256-GCM with typed, length-prefixed, versioned associated data.

Each refusal is shown next to its positive control (the untouched blob under
the right context opens), and the construction is checked against a plain
``AESGCM`` so the format stays standard AES-256-GCM anyone can review.
"""

from __future__ import annotations

import itertools
import pickle

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pccguard.enforcement.sealing import (
    FORMAT_VERSION,
    MAX_SEALS,
    NONCE_BYTES,
    OVERHEAD,
    TAG_BYTES,
    Sealer,
    SealError,
    associated_data,
)

KEY = bytes(range(32))
CANARY = b"the canary page: 31337.25 31337.25 31337.25"
CONTEXT = (3, 17, 2)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer("vllm-offload")


def test_round_trip(sealer: Sealer) -> None:
    for plain in (CANARY, b"", bytes(4096)):
        blob = sealer.seal(plain, *CONTEXT)
        assert len(blob) == len(plain) + OVERHEAD
        assert sealer.open(blob, *CONTEXT) == plain
    assert sealer.open(bytearray(sealer.seal(memoryview(CANARY), "k")), "k") == CANARY  # any bytes-like


def test_seal_into_writes_the_same_format_in_place(sealer: Sealer) -> None:
    slot = bytearray(len(CANARY) + OVERHEAD)
    sealer.seal_into(slot, CANARY, *CONTEXT)
    assert sealer.open(memoryview(slot), *CONTEXT) == CANARY
    with pytest.raises(ValueError):
        sealer.seal_into(bytearray(len(CANARY) + OVERHEAD - 1), CANARY)
    with pytest.raises(ValueError):
        sealer.seal_into(bytes(len(CANARY) + OVERHEAD), CANARY)  # read-only


def test_every_seal_draws_a_fresh_nonce(sealer: Sealer) -> None:
    nonces = {sealer.seal(CANARY, *CONTEXT)[:NONCE_BYTES] for _ in range(64)}
    assert len(nonces) == 64


def test_at_rest_bytes_hold_no_plaintext(sealer: Sealer) -> None:
    page = CANARY * 32
    assert CANARY[:16] in page  # positive control: the needle is in what would be stored in the clear
    blob = sealer.seal(page, *CONTEXT)
    assert CANARY[:16] not in blob and CANARY[-8:] not in blob


# --------------------------------------------------------------------------- refusals


def test_another_key_cannot_open(sealer: Sealer) -> None:
    blob = sealer.seal(CANARY, *CONTEXT)
    assert sealer.open(blob, *CONTEXT) == CANARY
    with pytest.raises(SealError):
        Sealer("vllm-offload").open(blob, *CONTEXT)  # a restart: same purpose, new key


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_a_flipped_bit_is_refused(sealer: Sealer, where: str) -> None:
    blob = bytearray(sealer.seal(CANARY, *CONTEXT))
    index = {"nonce": 0, "ciphertext": NONCE_BYTES + 5, "tag": len(blob) - 1}[where]
    assert sealer.open(bytes(blob), *CONTEXT) == CANARY
    blob[index] ^= 0x01
    with pytest.raises(SealError):
        sealer.open(bytes(blob), *CONTEXT)


@pytest.mark.parametrize("context", [(3, 17, 3), (17, 3, 2), (3, 17), (3, 17, 2, 0), ("3", 17, 2)])
def test_another_context_is_refused(sealer: Sealer, context: tuple[int | str, ...]) -> None:
    blob = sealer.seal(CANARY, *CONTEXT)
    assert sealer.open(blob, *CONTEXT) == CANARY
    with pytest.raises(SealError):
        sealer.open(blob, *context)


def test_another_purpose_is_refused_even_under_the_same_key() -> None:
    blob = Sealer("vllm-offload", key=KEY).seal(CANARY, "k")
    assert Sealer("vllm-offload", key=KEY).open(blob, "k") == CANARY
    with pytest.raises(SealError):
        Sealer("sglang-hicache", key=KEY).open(blob, "k")


@pytest.mark.parametrize("cut", [0, 1, NONCE_BYTES, OVERHEAD - 1, OVERHEAD, -1])
def test_a_truncated_or_extended_blob_is_refused(sealer: Sealer, cut: int) -> None:
    blob = sealer.seal(CANARY, *CONTEXT)
    assert sealer.open(blob, *CONTEXT) == CANARY
    with pytest.raises(SealError):
        sealer.open(blob[:cut], *CONTEXT)
    with pytest.raises(SealError):
        sealer.open(blob + b"\x00", *CONTEXT)


# --------------------------------------------------------------------------- unambiguous context

COLLIDING = [
    (("ab", "c"), ("a", "bc")),  # naive: "abc" both
    (("1",), (1,)),  # the text 1 and the number 1
    ((b"x",), ("x",)),  # bytes and text
    ((), ("",)),  # no field and an empty one
    ((b"", b"a"), (b"a", b"")),
    ((1, 23), (12, 3)),  # naive decimal join: "123" both
]


@pytest.mark.parametrize(("left", "right"), COLLIDING)
def test_contexts_that_collide_when_concatenated_do_not_here(
    left: tuple[int | str | bytes, ...], right: tuple[int | str | bytes, ...]
) -> None:
    def naive(ctx: tuple[int | str | bytes, ...]) -> bytes:
        return b"".join(v if isinstance(v, bytes) else str(v).encode() for v in ctx)

    assert naive(left) == naive(right)  # positive control: a plain concatenation cannot tell them apart
    assert associated_data("p", left) != associated_data("p", right)
    sealer = Sealer("sglang-hicache")
    with pytest.raises(SealError):
        sealer.open(sealer.seal(CANARY, *left), *right)


def test_purpose_and_context_cannot_trade_bytes() -> None:
    assert associated_data("ab", ("c",)) != associated_data("a", ("bc",))


@pytest.mark.parametrize("bad", [True, -1, 2**64, 1.5, None, ["x"]])
def test_context_fields_are_typed(sealer: Sealer, bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        sealer.seal(CANARY, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("purpose", ["", "Offload", "vllm offload", "x" * 65, "é"])
def test_a_purpose_is_a_short_identifier(purpose: str) -> None:
    with pytest.raises(ValueError):
        Sealer(purpose)


# --------------------------------------------------------------------------- standard AES-256-GCM


def documented_aad(purpose: str, fields: list[tuple[bytes, bytes]]) -> bytes:
    """The associated-data encoding exactly as the module docstring states it, written out by hand."""
    out = b"v" + (4).to_bytes(4, "big") + FORMAT_VERSION.to_bytes(4, "big")
    out += b"p" + len(purpose).to_bytes(4, "big") + purpose.encode()
    for kind, value in fields:
        out += kind + len(value).to_bytes(4, "big") + value
    return out


def test_known_answer_the_blob_is_plain_aes_256_gcm() -> None:
    blob = Sealer("vllm-offload", key=KEY).seal(CANARY, 3, "page-0", b"\x01\x02")
    aad = documented_aad(
        "vllm-offload", [(b"i", (3).to_bytes(8, "big")), (b"s", b"page-0"), (b"b", b"\x01\x02")]
    )
    nonce, body = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
    assert len(body) == len(CANARY) + TAG_BYTES
    assert AESGCM(KEY).decrypt(nonce, body, aad) == CANARY
    # and the other way: a blob made by a plain AESGCM with that encoding opens
    nonce = bytes(12)
    made = nonce + AESGCM(KEY).encrypt(nonce, CANARY, aad)
    assert Sealer("vllm-offload", key=KEY).open(made, 3, "page-0", b"\x01\x02") == CANARY


# --------------------------------------------------------------------------- the key stays inside


def test_the_key_is_never_shown_or_pickled() -> None:
    sealer = Sealer("vllm-offload", key=KEY)
    assert KEY.hex() not in repr(sealer) and repr(KEY) not in repr(sealer)
    assert "key hidden" in repr(sealer)
    with pytest.raises(TypeError):
        pickle.dumps(sealer)
    with pytest.raises(ValueError):
        Sealer("vllm-offload", key=KEY[:16])


def test_a_sealer_refuses_past_its_nonce_bound() -> None:
    sealer = Sealer("vllm-offload")
    sealer.seal(CANARY)  # positive control: sealing works below the bound
    sealer._seals = itertools.count(MAX_SEALS + 1)
    with pytest.raises(SealError):
        sealer.seal(CANARY)
