"""Stream files past the canary patterns in bounded memory.

Each file is read in chunks; the last ``longest pattern + 1`` bytes of one
chunk are kept in front of the next, so a canary that straddles a chunk
boundary is found, and a match is reported only once, by the chunk in which
it ends (one that ends exactly at a chunk's end waits for the next chunk,
which shows whether a printed id list goes on). Memory is bounded by the
chunk size, whatever the file's size: the chunk being searched (with the
overlap in front) and the one read ahead to tell whether the file ends.
Line numbers (for logs) count the newlines before the match.

What cannot be read is an error in the result, never a clean file: a
scanner that skips what it cannot open would call a store clean that it
never looked at. Inside a directory, links and special files are not
followed (a FIFO would block, a link may leave the tree) and are listed as
skipped; named on the command line, they are an error.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .canaries import Pattern

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    """One occurrence of one canary's shape in one file."""

    path: str
    offset: int
    length: int
    line: int
    canary: str
    encoding: str


@dataclass
class ScanResult:
    """Everything one scan saw: findings, what was read, what was skipped and what failed."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 clean, 1 found, 2 error (an error wins: what was not read was not shown clean)."""
        if self.errors:
            return 2
        return 1 if self.findings else 0


def files_under(roots: Sequence[Path], result: ScanResult) -> Iterator[Path]:
    """Regular files named or under the named directories, in a stable order."""
    for root in roots:
        try:
            mode = os.stat(root).st_mode
        except OSError as exc:
            result.errors.append(f"{root}: cannot read: {exc.strerror or type(exc).__name__}")
            continue
        if stat.S_ISREG(mode):
            yield root
        elif stat.S_ISDIR(mode):
            yield from _walk(root, result)
        else:
            result.errors.append(f"{root}: not a regular file or a directory")


def _walk(folder: Path, result: ScanResult) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        result.errors.append(f"{folder}: cannot list: {exc.strerror or type(exc).__name__}")
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.is_symlink():
            result.skipped.append(f"{path} (link)")
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(path, result)
        elif entry.is_file(follow_symlinks=False):
            yield path
        else:
            result.skipped.append(f"{path} (not a regular file)")


def scan_file(
    path: Path, pats: Sequence[Pattern], result: ScanResult, chunk: int = DEFAULT_CHUNK_BYTES
) -> None:
    """Add the findings of ``path`` to ``result`` (an unreadable file becomes an error)."""
    # The kept tail holds the longest match plus one byte: a match that ends exactly at a chunk's end
    # (a printed id list may go on with more digits) is decided with the next chunk, and the byte
    # before any match is there for the "no digit before" test.
    keep = max((p.max_length for p in pats), default=1) + 1
    name = str(path)
    found: list[Finding] = []
    try:
        with open(path, "rb") as handle:
            tail = b""
            base = 0  # file offset of buffer[0]
            lines_before = 0  # newlines in the file before buffer[0]
            reported_to = 0  # matches ending at or before this file offset are decided
            data = handle.read(chunk)
            while data:
                following = handle.read(chunk)
                eof = not following
                result.bytes += len(data)
                buffer = tail + data
                end = base + len(buffer)
                hits: list[tuple[int, int, Pattern]] = []
                for pat in pats:
                    for start, stop in _matches(pat, buffer):
                        stop_at = base + stop
                        if stop_at > reported_to and (eof or stop_at < end):
                            hits.append((start, stop - start, pat))
                # In offset order, the newlines are counted from the previous hit on: one pass over the
                # buffer however many hits it holds.
                line, counted = 1 + lines_before, 0
                for start, length, pat in sorted(hits, key=lambda h: (h[0], h[2].encoding)):
                    line += buffer.count(b"\n", counted, start)
                    counted = start
                    found.append(Finding(name, base + start, length, line, pat.canary, pat.encoding))
                reported_to = end if eof else end - 1
                cut = max(len(buffer) - keep, 0)
                lines_before += buffer.count(b"\n", 0, cut)
                base += cut
                tail = buffer[cut:]
                data = following
    except OSError as exc:
        result.errors.append(f"{path}: cannot read: {exc.strerror or type(exc).__name__}")
        return
    result.files += 1
    result.findings += _one_per_utf16_text(found)


def _one_per_utf16_text(found: list[Finding]) -> list[Finding]:
    """Drop the shifted twin of each UTF-16 occurrence.

    ASCII text in UTF-16 little-endian, read one byte later, is the same text
    big-endian (and the other way round), so one occurrence matches both
    needles one byte apart. Text is written 2-byte aligned far more often than
    not, so of the two the one at an even offset is kept.
    """
    utf16 = {(f.canary, f.encoding, f.offset) for f in found if f.encoding.startswith("utf-16-")}
    other = {"utf-16-le": "utf-16-be", "utf-16-be": "utf-16-le"}
    kept = []
    for f in found:
        if f.encoding in other and f.offset % 2 == 1:
            twins = {(f.canary, other[f.encoding], f.offset - 1), (f.canary, other[f.encoding], f.offset + 1)}
            if twins & utf16:
                continue
        kept.append(f)
    return kept


def _matches(pat: Pattern, buffer: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of every occurrence of ``pat`` in ``buffer``, overlapping ones included."""
    if pat.needle is not None:
        start = buffer.find(pat.needle)
        while start != -1:
            yield start, start + len(pat.needle)
            start = buffer.find(pat.needle, start + 1)
    elif pat.regex is not None:
        start = buffer.find(pat.anchor)
        while start != -1:
            match = pat.regex.match(buffer, start)  # its look-behind still sees the byte before ``start``
            if match is not None:
                yield match.start(), match.end()
            start = buffer.find(pat.anchor, start + 1)


def scan(roots: Sequence[Path], pats: Sequence[Pattern], chunk: int = DEFAULT_CHUNK_BYTES) -> ScanResult:
    """Scan every file named or under the named directories."""
    result = ScanResult()
    for path in files_under(roots, result):
        scan_file(path, pats, result, chunk)
    return result
