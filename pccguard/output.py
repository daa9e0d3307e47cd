"""Write output files atomically: a report is either complete or absent, never partial."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from pccguard.errors import InputError


def write_atomic(path: Path | str, text: str | bytes) -> None:
    """Write ``text`` (UTF-8) or bytes to a temporary file beside ``path``, fsync it, then rename over ``path``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError("output directory does not exist", where=str(folder))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(exc.strerror or "cannot write output", where=str(target)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def emit(text: str, output: Path | str | None) -> None:
    """To ``output`` atomically, or to stdout."""
    if output is None or str(output) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        write_atomic(output, text if text.endswith("\n") else text + "\n")
