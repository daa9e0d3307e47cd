"""Write output files (``-o PATH``) so that a report is complete or absent, and nothing else is replaced.

What happens depends on what ``PATH`` already is:

* **nothing**: a new regular file, created like a shell redirect would create
  it (mode ``0666 & ~umask``, the directory's default ACL applies).
* **a regular file**: replaced atomically: a temporary file beside it is
  written, fsynced and renamed over it, so a reader sees the old report or the
  new one, never a partial one, and a failure leaves the old one in place. The
  previous file's permission bits, owner and group are kept (setuid/setgid
  are dropped, as the kernel drops them when a file is written).
* **a symlink**: followed; its target is replaced as above and the link stays
  a link (a dangling link gets its target created).
* **a character device or a FIFO** (``/dev/null``, ``/dev/stdout``, a named
  pipe): written straight through, with no temporary file and no rename;
  replacing ``/dev/null`` with a regular file would break the whole machine.
* **a directory, a block device or a socket**: refused.
* **one of the command's input files** (the same device and inode, through any
  name, link or symlink): refused, so ``-o facts.yaml`` cannot destroy the facts
  it reports on.

Hard links: a regular file with several links is replaced like any other. The
name given to ``-o`` gets the new report atomically; the file's other names
keep the previous content (the link is broken). Writing in place would keep
the link, but a crash, a full disk or an error mid-write would then leave a
truncated report under every name, which is what atomic output exists to
prevent; and an input reached through another link is refused anyway.

Every failure is a one-line ``InputError`` naming the path (exit 2 in the CLI),
raised before anything is replaced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pccguard.errors import InputError, UsageError

#: How many random temporary names to try before giving up (a collision needs a 48-bit coincidence).
_TEMP_ATTEMPTS = 16
#: Leading characters of the target's name kept in the temporary name, well inside NAME_MAX (255).
_TEMP_STEM = 64


@dataclass(frozen=True)
class _Target:
    """Where and how to write: ``stream`` straight through ``path``, ``file`` by rename onto ``path``."""

    kind: Literal["file", "stream"]
    path: Path
    previous: os.stat_result | None


def _fail(path: Path, exc: OSError, doing: str = "cannot write the output") -> InputError:
    return InputError(f"{doing}: {exc.strerror or type(exc).__name__}", where=str(path))


def _check_folder(folder: Path) -> None:
    """The directory a new file goes into must exist and be a directory."""
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        raise InputError("output directory does not exist", where=str(folder)) from None
    except NotADirectoryError:
        raise InputError("output directory is not a directory", where=str(folder)) from None
    except OSError as exc:
        raise _fail(folder, exc, "cannot use the output directory") from None
    if not stat.S_ISDIR(mode):
        raise InputError("output directory is not a directory", where=str(folder))


def _new_file(path: Path) -> _Target:
    """``path`` does not exist; a dangling symlink gets its target created, not replaced by a file."""
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    _check_folder(target.parent if str(target.parent) else Path("."))
    return _Target("file", target, None)


def _resolved(path: Path, previous: os.stat_result) -> Path:
    """The real name of the regular file ``path`` reaches, checked to be the same file (not a stale link)."""
    real = Path(os.path.realpath(path))
    try:
        now = os.stat(real)
    except OSError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (previous.st_dev, previous.st_ino):
        raise InputError("cannot tell which file the output path names", where=str(path))
    return real


def _inspect(path: Path) -> _Target:
    """Decide how ``path`` is written, from what it is now (symlinks followed)."""
    try:
        previous = os.stat(path)
    except FileNotFoundError:
        return _new_file(path)
    except NotADirectoryError:
        raise InputError("output directory is not a directory", where=str(path.parent)) from None
    except OSError as exc:
        raise _fail(path, exc) from None
    except ValueError:  # a NUL in the name: no such file can exist
        raise InputError("the output path contains a NUL character", where=repr(str(path))) from None
    mode = previous.st_mode
    if stat.S_ISREG(mode):
        return _Target("file", _resolved(path, previous), previous)
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return _Target("stream", path, previous)
    if stat.S_ISDIR(mode):
        raise UsageError("the output is a directory; give a file name", where=str(path))
    raise UsageError("the output is not a regular file, a character device or a FIFO", where=str(path))


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _refuse_inputs(path: Path, target: _Target, inputs: Iterable[Path | str]) -> None:
    """An existing output that is an input file, by any name, is refused: the report would destroy it."""
    if target.previous is None or target.kind != "file":
        return
    for item in inputs:
        try:
            other = os.stat(item)
        except (OSError, ValueError):  # an input that does not exist is reported by its own loader
            continue
        if _same_file(other, target.previous):
            raise UsageError(
                f"the output is the input file {item}; refusing to overwrite it", where=str(path)
            )


def check_output(path: Path | str, *, inputs: Iterable[Path | str] = ()) -> None:
    """Refuse a bad ``-o PATH`` before any work is done (the write checks again)."""
    target = Path(path)
    _refuse_inputs(target, _inspect(target), inputs)


def _create_temp(target: Path) -> tuple[int, Path]:
    """A new temporary file beside ``target``, mode ``0666 & ~umask`` (the kernel applies the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    for _ in range(_TEMP_ATTEMPTS):
        tmp = target.with_name(f".{target.name[:_TEMP_STEM]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise _fail(target, exc, "cannot create a file in the output directory") from None
    raise InputError("cannot create a temporary file in the output directory", where=str(target))


def _keep_metadata(fd: int, previous: os.stat_result) -> None:
    """Give the new file the old one's owner, group and permission bits (an owner change needs root)."""
    current = os.fstat(fd)
    if (current.st_uid, current.st_gid) != (previous.st_uid, previous.st_gid):
        try:
            os.fchown(fd, previous.st_uid, previous.st_gid)
        except PermissionError:
            with contextlib.suppress(OSError):
                os.fchown(fd, -1, previous.st_gid)
    os.fchmod(fd, stat.S_IMODE(previous.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; best effort, as some file systems refuse to fsync a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace(target: _Target, data: bytes, where: Path) -> None:
    """Temporary file beside the target, fsync, rename: the old file stays until the new one is complete."""
    fd, tmp = _create_temp(target.path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if target.previous is not None:
                _keep_metadata(handle.fileno(), target.previous)
            os.fsync(handle.fileno())
        os.replace(tmp, target.path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _fail(where, exc) from None
        raise
    _fsync_folder(target.path.parent)


def _write_through(target: _Target, data: bytes) -> None:
    """Write to a device or FIFO as a shell redirect does; opening a FIFO waits for its reader."""
    try:
        fd = os.open(target.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _fail(target.path, exc) from None
    try:
        now = os.fstat(fd)
        if target.previous is None or not _same_file(now, target.previous):
            raise InputError("the output changed while it was being opened", where=str(target.path))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise _fail(target.path, exc) from None
    finally:
        os.close(fd)


def write_atomic(path: Path | str, text: str | bytes, *, inputs: Iterable[Path | str] = ()) -> None:
    """Write ``text`` (UTF-8) or bytes to ``path`` as the module docstring describes; never over an input."""
    where = Path(path)
    target = _inspect(where)
    _refuse_inputs(where, target, inputs)
    data = text.encode("utf-8") if isinstance(text, str) else text
    if target.kind == "stream":
        _write_through(target, data)
    else:
        _replace(target, data, where)


def emit(text: str, output: Path | str | None, *, inputs: Iterable[Path | str] = ()) -> None:
    """To ``output`` (never one of ``inputs``), or to stdout when it is ``None`` or ``-``."""
    line = text if text.endswith("\n") else text + "\n"
    if output is None or str(output) == "-":
        sys.stdout.write(line)
        sys.stdout.flush()
    else:
        write_atomic(output, line, inputs=inputs)
