"""Canaries and the byte patterns each can leave behind.

An engine that writes a prompt somewhere writes it in one of a few shapes:
as text (a request log: UTF-8; a Windows-built or JVM tool: UTF-16), as the
model's token ids in a tensor (a KV offload file, a crash dump: 32- or 64-bit
little-endian integers) or as a printed list (a KV-event capture, a debug log:
``[1, 2, 3]``). Each canary becomes one :class:`Pattern` per shape. Token ids
come from ``--canary-ids`` or from a tokenizer (``tokenizer.json``, through the
``tokenizers`` package), which also encodes the canary after a space, because
inside a prompt a BPE tokenizer usually sees it that way.

Short canaries are refused: a four-byte text or a three-token sequence matches
unrelated bytes of any large file by chance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pccguard.errors import UsageError

#: Fewest characters a text canary may have (shorter ones match binary noise by chance).
MIN_TEXT_CHARS = 8
#: Fewest token ids a token canary may have.
MIN_TOKENS = 4
#: Separators a printed id list may use between ids: ", ", "," or whitespace (at most 3 characters).
_SEPARATOR = rb"[\s,;]{1,3}"


@dataclass(frozen=True)
class Canary:
    """One planted value: a label for reports, its text (if any) and its token-id sequences."""

    label: str
    text: str | None
    token_ids: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class Pattern:
    """One shape of one canary: literal ``needle`` bytes, or a ``regex`` (printed id lists)."""

    canary: str
    encoding: str
    needle: bytes | None = None
    regex: re.Pattern[bytes] | None = None
    #: The longest match this pattern can have, which sets the overlap kept between chunks.
    max_length: int = 0
    #: Bytes every match of ``regex`` starts with: found with ``bytes.find`` (C speed), then the regex
    #: is tried there only, instead of at every byte of the file.
    anchor: bytes = b""


def text_canary(label: str, text: str) -> Canary:
    if len(text) < MIN_TEXT_CHARS:
        raise UsageError(f"canary {text!r} is shorter than {MIN_TEXT_CHARS} characters", where="--canary")
    return Canary(label=label, text=text)


def parse_ids(raw: str) -> tuple[int, ...]:
    """``"1,2,3,4"`` or ``"1 2 3 4"`` as token ids (non-negative integers)."""
    parts = [p for p in re.split(r"[\s,]+", raw.strip()) if p]
    try:
        ids = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"token ids must be integers, got {raw!r}", where="--canary-ids") from None
    if any(i < 0 or i >= 2**63 for i in ids):
        raise UsageError("token ids must be between 0 and 2**63 - 1", where="--canary-ids")
    if len(ids) < MIN_TOKENS:
        raise UsageError(
            f"a token canary needs at least {MIN_TOKENS} ids, got {len(ids)}", where="--canary-ids"
        )
    return ids


def tokenized(canaries: Sequence[Canary], tokenizer: Path) -> list[Canary]:
    """The text canaries with their token ids under ``tokenizer`` (a ``tokenizer.json`` or its directory)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise UsageError(
            "--tokenizer needs the 'tokenizers' package (pip install tokenizers)", where="--tokenizer"
        ) from None
    path = tokenizer / "tokenizer.json" if tokenizer.is_dir() else tokenizer
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises its own exception types for unreadable files
        raise UsageError(f"cannot load the tokenizer: {exc}", where=str(path)) from None
    out: list[Canary] = []
    for canary in canaries:
        if canary.text is None:
            out.append(canary)
            continue
        forms = {
            tuple(tok.encode(form, add_special_tokens=False).ids) for form in (canary.text, " " + canary.text)
        }
        usable = tuple(sorted(ids for ids in forms if len(ids) >= MIN_TOKENS))
        out.append(Canary(label=canary.label, text=canary.text, token_ids=canary.token_ids + usable))
    return out


def patterns(canaries: Sequence[Canary]) -> list[Pattern]:
    """Every shape every canary can leave, each with the longest match it can have."""
    out: list[Pattern] = []
    for canary in canaries:
        if canary.text is not None:
            for encoding, codec in (
                ("utf-8", "utf-8"),
                ("utf-16-le", "utf-16-le"),
                ("utf-16-be", "utf-16-be"),
            ):
                needle = canary.text.encode(codec)
                out.append(Pattern(canary.label, encoding, needle=needle, max_length=len(needle)))
        for ids in canary.token_ids:
            for encoding, width in (("token-ids-int32", 4), ("token-ids-int64", 8)):
                if width == 4 and max(ids) >= 2**31:
                    continue
                needle = b"".join(i.to_bytes(width, "little") for i in ids)
                out.append(Pattern(canary.label, encoding, needle=needle, max_length=len(needle)))
            digits = [str(i).encode() for i in ids]
            body = _SEPARATOR.join(re.escape(d) for d in digits)
            regex = re.compile(rb"(?<![0-9])" + body + rb"(?![0-9])")
            longest = sum(len(d) for d in digits) + 3 * (len(ids) - 1)
            out.append(
                Pattern(canary.label, "token-ids-text", regex=regex, max_length=longest, anchor=digits[0])
            )
    return out
