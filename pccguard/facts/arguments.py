"""An engine's own argument parser, made to fail in one line instead of printing usage and exiting.

Facts are read through the engine's parser (not a copy of its flag list), so
that flags added or renamed between releases are understood as the engine
understands them. ``argparse`` reports a bad argument by printing a usage dump
and calling ``sys.exit``; a check must instead stop with one line that names
the argument, and exit status 2, like every other bad input. The same wrapper
serves every engine adapter.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from pccguard.errors import InputError

#: Longest text kept from an engine's error message.
MAX_MESSAGE = 300


def first_line(exc: BaseException) -> str:
    """``Type: first meaningful line`` of an exception raised while an engine read its arguments.

    A pydantic validation error gives its first error's message rather than
    its ``1 validation error for ...`` header; tracebacks and "for further
    information" trailers are skipped.
    """
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            message = first.get("msg", "") if isinstance(first, dict) else str(first)
            return f"{type(exc).__name__}: {message}"[:MAX_MESSAGE]
        except (IndexError, TypeError, AttributeError, ValueError):
            pass  # not pydantic's shape: fall back to the text of the exception
    text = str(exc).strip() or type(exc).__name__
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("For further information", "Traceback")):
            return f"{type(exc).__name__}: {line}"[:MAX_MESSAGE]
    return type(exc).__name__


def one_line_errors(parser: argparse.ArgumentParser, what: str) -> argparse.ArgumentParser:
    """Make ``parser`` raise ``InputError("<what>: <message>")`` where it would print usage and exit.

    ``what`` names the command whose arguments are read (``vllm serve
    arguments``). ``--help`` and ``--version`` exit too; they are refused the
    same way, since a check has no help to print for the engine.
    """

    def error(message: str) -> NoReturn:
        raise InputError(f"{what}: {message}")

    def exit_(status: int = 0, message: str | None = None) -> NoReturn:
        del status
        raise InputError(f"{what}: {(message or '').strip() or 'help is not supported here'}")

    parser.error = error  # type: ignore[method-assign]
    parser.exit = exit_  # type: ignore[method-assign]
    return parser


def parse_engine_args(parser: argparse.ArgumentParser, argv: Sequence[str], what: str) -> argparse.Namespace:
    """``parser.parse_args(argv)``; anything the engine's parser rejects is one ``InputError`` line.

    Besides ``error``/``exit``, a parser built with ``exit_on_error=False`` or
    an engine's custom action may raise an exception of its own; it becomes
    the same one line.
    """
    one_line_errors(parser, what)
    try:
        return parser.parse_args(list(argv))
    except InputError:
        raise
    except SystemExit as exc:  # an engine action that calls sys.exit itself
        raise InputError(f"{what} rejected (exit {exc.code})") from None
    except Exception as exc:
        raise InputError(f"{what} rejected: {first_line(exc)}") from None


def engine_error(what: str, exc: BaseException) -> InputError:
    """The one-line ``InputError`` for an exception an engine raised while turning arguments into config."""
    return InputError(f"{what} rejected: {first_line(exc)}")
