"""pccguard's transparency log: an append-only directory of C2SP tiles under a signed checkpoint.

One writer at a time (an exclusive ``flock`` on ``DIR/.lock``; a second writer
is refused, not queued). An append writes the new entry bundles and hash
tiles first, each file to a temporary name, ``fsync``-ed and renamed into
place, and the signed checkpoint last, the same way. The checkpoint is the
commitment: until its rename, readers and the next writer see the previous
size, and the files an interrupted append left are never read for that size
(:mod:`.tiles`); the next append rewrites them. So a kill at any point loses
nothing that was committed and never leaves a torn tile behind a checkpoint.

``DIR/log.vkey`` is the note verifier key clients trust; ``DIR/log.key`` the
signer key when the log made its own (mode 0600), unless the operator keeps the
key elsewhere (``--key FILE``). Every read checks what it reads: the
checkpoint's signature, each tile's length, and in :meth:`TransparencyLog.verify`
every hash against the entries it commits to.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pccguard.errors import InputError
from pccguard.files.output import write_atomic

from . import merkle, tiles
from .note import Checkpoint, NoteError, Signer, Verifier, open_note, sign

CHECKPOINT = "checkpoint"
VKEY = "log.vkey"
SKEY = "log.key"
LOCK = ".lock"

K = TypeVar("K")


class LogError(InputError):
    """The log cannot be read, written or trusted; one line, exit 2."""


def _mkdirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each made durable in its parent."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir()
        fd = os.open(folder.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write(root: Path, relative: str, data: bytes | str) -> None:
    target = root / relative
    _mkdirs(target.parent)
    write_atomic(target, data)


@dataclass(frozen=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: bytes
    path: list[bytes]

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": base64.b64encode(self.leaf_hash).decode(),
            "proof": [base64.b64encode(p).decode() for p in self.path],
        }


class TransparencyLog:
    """A log directory, opened against the verifier key its checkpoint must be signed with."""

    def __init__(self, root: Path, verifier: Verifier) -> None:
        self.root = root
        self.verifier = verifier

    # ------------------------------------------------------------------ create and open

    @classmethod
    def init(cls, root: Path, origin: str, key: Path | None = None) -> TransparencyLog:
        """A new, empty log at ``root`` (which must not exist or be empty), signed by ``key`` or a new key."""
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise LogError("the log directory exists and is not empty", where=str(root))
        signer = _load_signer(key) if key is not None else Signer.generate(origin)
        if signer.name != origin:
            raise LogError(
                f"the key is named {signer.name!r}, the log's origin is {origin!r}", where=str(key)
            )
        _mkdirs(root)
        if key is None:
            fd = os.open(root / SKEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(signer.skey() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        _write(root, VKEY, signer.verifier.encode() + "\n")
        log = cls(root, signer.verifier)
        _write(root, CHECKPOINT, sign(Checkpoint(origin, 0, merkle.EMPTY_ROOT).text(), [signer]))
        return log

    @classmethod
    def open(cls, root: Path, trusted: Verifier | None = None) -> TransparencyLog:
        """The log at ``root``, trusting ``trusted`` (default: the log's own ``log.vkey``)."""
        if not (root / CHECKPOINT).is_file():
            raise LogError("not a pccguard log (no checkpoint)", where=str(root))
        verifier = trusted if trusted is not None else read_vkey(root / VKEY)
        return cls(root, verifier)

    def checkpoint(self) -> Checkpoint:
        """The current checkpoint, its signature checked against the trusted key."""
        path = self.root / CHECKPOINT
        try:
            note = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LogError(f"cannot read the checkpoint: {exc}", where=str(path)) from None
        try:
            point = Checkpoint.parse(open_note(note, [self.verifier]).text)
        except NoteError as exc:
            raise LogError(f"the checkpoint does not verify: {exc}", where=str(path)) from None
        if point.origin != self.verifier.name:
            raise LogError("the checkpoint's origin is not the key's name", where=str(path))
        return point

    # ------------------------------------------------------------------ read

    def _tile(self, tile: tiles.Tile) -> bytes:
        path = self.root / tile.path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LogError(f"cannot read a tile: {exc.strerror}", where=str(path)) from None
        if tile.level is not None and len(data) != tile.width * tiles.HASH_SIZE:
            raise LogError(f"the tile holds {len(data)} bytes, not {tile.width} hashes", where=str(path))
        return data

    def hashes(self, size: int, level: int, start: int, end: int) -> list[bytes]:
        """Stored hashes ``[start, end)`` of ``level`` in the tree of ``size``."""
        out: list[bytes] = []
        at = start
        while at < end:
            tile = tiles.tile_for(size, level, at)
            data = self._tile(tile)
            first = tile.index * tiles.WIDTH
            stop = min(end, first + tile.width)
            out += [data[(i - first) * 32 : (i - first + 1) * 32] for i in range(at, stop)]
            at = stop
        return out

    def entries(self, size: int, start: int, end: int) -> list[bytes]:
        out: list[bytes] = []
        at = start
        while at < end:
            tile = tiles.tile_for(size, None, at)
            try:
                found = tiles.unbundle(self._tile(tile), tile.width)
            except ValueError as exc:
                raise LogError(str(exc), where=str(self.root / tile.path)) from None
            first = tile.index * tiles.WIDTH
            stop = min(end, first + tile.width)
            out += found[at - first : stop - first]
            at = stop
        return out

    def range_hash(self, size: int, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)`` of the tree of ``size``, from as few stored hashes as the tiles allow."""
        pieces = []
        for a, b in merkle.perfect_ranges(start, end):
            height = (b - a).bit_length() - 1
            level, rest = divmod(height, tiles.HEIGHT)
            first = a >> (tiles.HEIGHT * level)
            pieces.append(merkle.root(self.hashes(size, level, first, first + (1 << rest))))
        if not pieces:
            return merkle.EMPTY_ROOT
        top = pieces[-1]
        for piece in reversed(pieces[:-1]):
            top = merkle.node_hash(piece, top)
        return top

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """An inclusion proof of entry ``index`` in the tree of ``size`` (default: the checkpoint's)."""
        size = self.checkpoint().size if size is None else size
        if not 0 <= index < size:
            raise LogError(f"the log of size {size} has no entry {index}")
        leaf = self.hashes(size, 0, index, index + 1)[0]
        path = merkle.inclusion_path(index, size, lambda a, b: self.range_hash(size, a, b))
        return InclusionProof(index, size, leaf, path)

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return merkle.consistency_path(size1, size2, lambda a, b: self.range_hash(size2, a, b))

    # ------------------------------------------------------------------ write

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LogError("another writer holds the log", where=str(self.root)) from None
            yield
        finally:
            os.close(fd)

    def append(self, entries: Sequence[bytes], signer: Signer) -> Checkpoint:
        """Add ``entries`` and commit them under a new checkpoint signed by ``signer`` (the log's key)."""
        if signer.verifier != self.verifier:
            raise LogError("the signer key is not the log's key")
        if not entries:
            raise LogError("nothing to append")
        for entry in entries:
            if len(entry) > tiles.MAX_ENTRY_BYTES:
                raise LogError(f"an entry is larger than {tiles.MAX_ENTRY_BYTES} bytes")
        with self._locked():
            old = self.checkpoint()
            size, new = old.size, old.size + len(entries)
            self._write_tiles(None, size, new, size, list(entries))
            level_hashes = [merkle.leaf_hash(e) for e in entries]
            level, first = 0, size
            while level_hashes:  # a level changes only where the one below filled a tile
                self._write_tiles(level, size, new, first, level_hashes)
                before, after = tiles.stored(size, level + 1), tiles.stored(new, level + 1)
                level_hashes = [
                    merkle.root(self.hashes(new, level, i * tiles.WIDTH, (i + 1) * tiles.WIDTH))
                    for i in range(before, after)
                ]
                level, first = level + 1, before
            root = self.range_hash(new, 0, new)
            point = Checkpoint(old.origin, new, root)
            _write(self.root, CHECKPOINT, sign(point.text(), [signer]))
            return point

    def _write_tiles(self, level: int | None, size: int, new: int, first: int, fresh: list[bytes]) -> None:
        """Write the tiles of ``level`` (``None``: the entry bundles) that ``fresh``, from index ``first``, changes.

        The rightmost tile of the old size is rewritten with what it held plus the new items; every tile
        after it is new.
        """
        if not fresh:
            return
        start = (first // tiles.WIDTH) * tiles.WIDTH
        if level is None:
            kept = self.entries(size, start, first) if first > start else []
        else:
            kept = self.hashes(size, level, start, first) if first > start else []
        pending = kept + fresh
        for offset in range(0, len(pending), tiles.WIDTH):
            tile = tiles.tile_for(new, level, start + offset)
            items = pending[offset : offset + tile.width]
            _write(self.root, tile.path, tiles.bundle(items) if level is None else b"".join(items))

    # ------------------------------------------------------------------ verify

    def verify(self) -> Checkpoint:
        """Check the checkpoint's signature and every tile against the entries; the checkpoint, or ``LogError``."""
        point = self.checkpoint()
        size = point.size
        leaves = [merkle.leaf_hash(e) for e in self.entries(size, 0, size)]
        level_hashes = leaves
        for level in range(tiles.levels(size)):
            if self.hashes(size, level, 0, len(level_hashes)) != level_hashes:
                raise LogError(f"the level-{level} tiles do not match the entries", where=str(self.root))
            full = len(level_hashes) // tiles.WIDTH
            level_hashes = [
                merkle.root(level_hashes[i * tiles.WIDTH : (i + 1) * tiles.WIDTH]) for i in range(full)
            ]
        if merkle.root(leaves) != point.root:
            raise LogError("the checkpoint's root is not the root of the entries", where=str(self.root))
        return point


def _read_key(path: Path, what: str, parse: Callable[[str], K]) -> K:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LogError(f"cannot read the {what}: {exc}", where=str(path)) from None
    except NoteError as exc:
        raise LogError(str(exc), where=str(path)) from None


def read_vkey(path: Path) -> Verifier:
    return _read_key(path, "verifier key", Verifier.parse)


def _load_signer(path: Path) -> Signer:
    return _read_key(path, "signer key", Signer.parse)


def load_signer(root: Path, key: Path | None) -> Signer:
    """The log's signer: ``key``, or the one the log made at ``init`` (``DIR/log.key``)."""
    return _load_signer(key if key is not None else root / SKEY)
