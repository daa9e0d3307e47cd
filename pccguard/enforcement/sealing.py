"""One AES-256-GCM sealing format for every byte pccguard moves out of the engine's memory.

KV pages offloaded by an engine (vLLM's host offload region, SGLang's HiCache
files) leave the accelerator's protected memory. Both engines seal them with
this one construction, so there is one format to review:

* **key** -- 256 random bits generated when a ``Sealer`` is built, held only by
  the ``AESGCM`` object inside it: never shown, never pickled, never written.
  A restart builds a new sealer, so everything sealed before it is unreadable
  (cryptographic erasure).
* **blob** -- ``nonce (12 bytes) || ciphertext || tag (16 bytes)``: standard
  AES-256-GCM with a fresh random 96-bit nonce per seal. A sealer refuses to
  seal more than 2**32 times, the bound for random nonces under one key.
* **associated data** -- what the blob is bound to, so it cannot be moved,
  swapped or replayed into another place: the format version, the sealer's
  purpose (``"vllm-offload"``, ``"sglang-hicache"``) and the caller's context
  fields, each encoded as ``type (1 byte) || length (4 bytes, big-endian) ||
  value`` (see ``associated_data``). Types are ``v`` format version, ``p``
  purpose, ``i`` integer (8 bytes, big-endian, unsigned), ``s`` text (UTF-8),
  ``b`` bytes. Every field carries its type and length, so two different
  contexts never encode to the same bytes (``(1, 23)`` is not ``(12, 3)``, the
  text ``"1"`` is not the integer ``1``).

Opening with a wrong key, after a flipped bit, under another context or purpose,
or from a truncated blob raises ``SealError`` and nothing else; each adapter maps
that one error to its engine's behaviour for unreadable offloaded data.
"""

from __future__ import annotations

import itertools
import re
import secrets
from typing import TYPE_CHECKING, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from typing_extensions import Buffer

#: Version of the associated-data encoding and blob layout; part of every blob's associated data.
FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
#: Bytes a sealed blob has beyond its plaintext.
OVERHEAD = NONCE_BYTES + TAG_BYTES
#: Seals per key: the bound for random 96-bit nonces (collision probability below 2**-32).
MAX_SEALS = 2**32

ContextField = int | str | bytes

_PURPOSE_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{0,63}$")
_U64 = 2**64


class SealError(Exception):
    """A blob that does not open under this sealer and context: tampered, moved, truncated or from another key."""


def _field(kind: bytes, value: bytes) -> bytes:
    return kind + len(value).to_bytes(4, "big") + value


def _context_field(value: ContextField) -> bytes:
    if isinstance(value, bool):  # ``True`` is an ``int``; a flag must not read as the number 1
        raise TypeError("a sealing context field is an int, str or bytes, not a bool")
    if isinstance(value, int):
        if not 0 <= value < _U64:
            raise ValueError("an integer sealing context field must fit in 64 unsigned bits")
        return _field(b"i", value.to_bytes(8, "big"))
    if isinstance(value, str):
        return _field(b"s", value.encode("utf-8"))
    if isinstance(value, bytes):
        return _field(b"b", value)
    raise TypeError(f"a sealing context field is an int, str or bytes, not {type(value).__name__}")


def associated_data(purpose: str, context: tuple[ContextField, ...]) -> bytes:
    """The associated data of a blob: version, purpose, then each context field, all typed and length-prefixed."""
    head = _field(b"v", FORMAT_VERSION.to_bytes(4, "big")) + _field(b"p", purpose.encode("ascii"))
    return head + b"".join(_context_field(value) for value in context)


class Sealer:
    """AES-256-GCM under a key of its own, for one purpose; see the module docstring for the format."""

    __slots__ = ("_aead", "_seals", "purpose")

    def __init__(self, purpose: str, *, key: bytes | None = None) -> None:
        """``key`` exists for known-answer checks of the format; engines always let the sealer draw one."""
        if not isinstance(purpose, str) or not _PURPOSE_RE.match(purpose):
            raise ValueError("a sealer's purpose is a short lower-case identifier such as 'vllm-offload'")
        if key is not None and (not isinstance(key, bytes) or len(key) != 32):
            raise ValueError("a sealing key has 32 bytes")
        self.purpose = purpose
        self._aead = AESGCM(key if key is not None else AESGCM.generate_key(bit_length=256))
        self._seals = itertools.count(1)

    def __repr__(self) -> str:
        return f"Sealer({self.purpose!r}, <key hidden>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Sealer's key never leaves its process")

    def seal(self, plaintext: Buffer, *context: ContextField) -> bytes:
        """``nonce || ciphertext || tag`` of ``plaintext`` (any bytes-like object), bound to ``context``."""
        out = bytearray(len(memoryview(plaintext).cast("B")) + OVERHEAD)
        self.seal_into(out, plaintext, *context)
        return bytes(out)

    def seal_into(self, out: Buffer, plaintext: Buffer, *context: ContextField) -> None:
        """``seal`` written into ``out`` (writable, exactly ``len(plaintext) + OVERHEAD`` bytes): no extra copy."""
        target = memoryview(out).cast("B")
        data = memoryview(plaintext).cast("B")
        if target.readonly or len(target) != len(data) + OVERHEAD:
            raise ValueError(
                "the output of a seal is a writable buffer of the plaintext's size plus OVERHEAD"
            )
        if next(self._seals) > MAX_SEALS:
            raise SealError("this sealer reached its seal limit; a new key is needed")
        nonce = secrets.token_bytes(NONCE_BYTES)
        target[:NONCE_BYTES] = nonce
        self._aead.encrypt_into(nonce, data, associated_data(self.purpose, context), target[NONCE_BYTES:])

    def open(self, blob: Buffer, *context: ContextField) -> bytes:
        """The plaintext of ``blob`` sealed by this sealer under ``context``; raises ``SealError`` otherwise."""
        aad = associated_data(self.purpose, context)
        # One copy into bytes first: decrypting from a strided view is an order of magnitude slower.
        data = memoryview(memoryview(blob).tobytes())
        if len(data) < OVERHEAD:
            raise SealError("a sealed blob is shorter than its nonce and tag")
        try:
            return self._aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealError("a sealed blob failed authentication") from None
