"""The C2SP ``tlog-tiles`` layout: where each hash and entry of a log of a given size lives.

A log is static files: ``checkpoint``, the hash tiles ``tile/<L>/<N>`` and the
entry bundles ``tile/entries/<N>``, any web server or CDN can serve them. A tile
holds 256 consecutive hashes of one level of the tree (level 0: the leaf
hashes; level L: the roots of the full tiles of level L-1), a bundle the
entries of one level-0 tile, each as a big-endian 16-bit length and its bytes.
The rightmost tile of a level is partial until it fills: ``<N>.p/<W>`` with
its W hashes. ``N`` is written in groups of three digits, all but the last
prefixed with ``x`` (``1234067`` is ``x001/x234/067``).

Which file a reader opens depends only on the size it was given (the size of
the checkpoint it trusts), so files a later append writes -- a wider partial
tile, a full one -- never change what an older checkpoint's reader sees.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 256
HEIGHT = 8
HASH_SIZE = 32
MAX_ENTRY_BYTES = 0xFFFF


def encode_index(n: int) -> str:
    """A tile index as its path: groups of three digits, all but the last prefixed with ``x``."""
    if n < 0:
        raise ValueError("a tile index is not negative")
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


@dataclass(frozen=True)
class Tile:
    """One tile of a log of some size: its level (``None`` for an entry bundle), index and width."""

    level: int | None
    index: int
    width: int

    @property
    def path(self) -> str:
        where = "entries" if self.level is None else str(self.level)
        partial = f".p/{self.width}" if self.width < WIDTH else ""
        return f"tile/{where}/{encode_index(self.index)}{partial}"


def stored(size: int, level: int) -> int:
    """How many hashes level ``level`` holds in a tree of ``size`` leaves."""
    return size >> (HEIGHT * level)


def tile_for(size: int, level: int | None, index: int) -> Tile:
    """The tile holding hash (or entry) ``index`` of ``level`` in a tree of ``size``, as that size stores it."""
    count = stored(size, 0 if level is None else level)
    if not 0 <= index < count:
        raise ValueError(f"level {level} of a tree of size {size} has no element {index}")
    number = index // WIDTH
    return Tile(level, number, min(WIDTH, count - number * WIDTH))


def levels(size: int) -> int:
    """How many levels store hashes in a tree of ``size`` (0 for the empty tree)."""
    n = 0
    while stored(size, n) > 0:
        n += 1
    return n


def bundle(entries: list[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError(f"an entry is at most {MAX_ENTRY_BYTES} bytes")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def unbundle(data: bytes, count: int) -> list[bytes]:
    """The ``count`` entries of a bundle; anything else (short, long, trailing bytes) raises ``ValueError``."""
    entries, at = [], 0
    for _ in range(count):
        if at + 2 > len(data):
            raise ValueError("the entry bundle ends early")
        length = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + length > len(data):
            raise ValueError("the entry bundle ends inside an entry")
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    if at != len(data):
        raise ValueError("the entry bundle holds more than its entries")
    return entries
