"""Load YAML or JSON documents while remembering the line of every value.

Facts files are the path for engines without an adapter, and every fact must
carry its provenance: a file and a line. PyYAML's node graph knows the line of
each scalar, so the loader builds plain Python data and a ``dotted path → line``
map in one pass. JSON is a subset of YAML, so one loader serves both; errors
become one-line ``InputError`` messages naming the file and the line.

Every document pccguard reads (facts, waivers, profiles, plugin config,
fixtures) comes through ``load_document``, so this is the one place that turns
what PyYAML and the standard library raise into such messages: a NUL byte or
another character YAML forbids, a scalar whose tag cannot build it (an invalid
date such as ``2026-13-01``, ``!!bool maybe``), an integer longer than Python's
int-string conversion limit (``sys.get_int_max_str_digits()``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pccguard.errors import InputError

MAX_BYTES = 8 * 1024 * 1024
#: Values built from one document; YAML aliases can otherwise expand exponentially ("billion laughs").
MAX_NODES = 200_000


@dataclass
class SourceDocument:
    path: Path
    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, dotted: str) -> int | None:
        parts = dotted.split(".")
        while parts:
            line = self.lines.get(".".join(parts))
            if line is not None:
                return line
            parts.pop()
        return None


class _LineError(Exception):
    """A problem at a known line; becomes ``InputError`` with ``path:line``."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a silent override is a fail-open)."""


_INT_TAG = "tag:yaml.org,2002:int"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
#: What the constructors of the safe tags raise on a value they cannot build; a YAMLError is handled apart.
_CONSTRUCTOR_ERRORS = (ValueError, ArithmeticError, LookupError, TypeError, AttributeError)

_PLAIN_TAGS: dict[type, str] = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}


def _shown(value: str, limit: int = 40) -> str:
    """A scalar as an error message quotes it: short, so a 5,000-digit number is not echoed whole."""
    return repr(value if len(value) <= limit else value[: limit // 2] + "..." + value[-8:])


def _scalar_problem(node: yaml.Node, exc: Exception) -> str:
    """Why a scalar could not be built, in words that name the value and not Python's internals."""
    value = str(node.value)
    if node.tag == _INT_TAG:
        digits = sum(ch.isdigit() for ch in value)
        if digits > sys.get_int_max_str_digits():
            return f"integer with {digits} digits (more than {sys.get_int_max_str_digits()} are not accepted)"
        return f"invalid integer {_shown(value)}"
    if node.tag == _TIMESTAMP_TAG:
        reason = f": {exc}" if isinstance(exc, ValueError) else ""
        return f"invalid date or timestamp {_shown(value)}{reason}"
    return f"invalid value {_shown(value)} for tag {node.tag!r}"


def _build_scalar(node: yaml.Node, loader: _Loader) -> Any:
    """``loader.construct_object`` with the constructors' own exceptions turned into ``_LineError``."""
    try:
        return loader.construct_object(node, deep=True)
    except _CONSTRUCTOR_ERRORS as exc:
        raise _LineError(node.start_mark.line + 1, _scalar_problem(node, exc)) from None


def _construct(
    node: yaml.Node, prefix: str, lines: dict[str, int], loader: _Loader, budget: list[int]
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _LineError(None, f"document expands to more than {MAX_NODES} values (alias bomb?)")
    if prefix:
        lines.setdefault(prefix, node.start_mark.line + 1)
    expected = _PLAIN_TAGS.get(type(node))
    if expected is not None and node.tag != expected:
        raise _LineError(node.start_mark.line + 1, f"malformed YAML: tag {node.tag!r} is not allowed")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _build_scalar(key_node, loader)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise _LineError(key_node.start_mark.line + 1, "mapping keys must be scalars")
            key = str(key)
            if key in out:
                raise _LineError(key_node.start_mark.line + 1, f"duplicate key {key!r}")
            child = f"{prefix}.{key}" if prefix else key
            lines[child] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, child, lines, loader, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, f"{prefix}.{index}" if prefix else str(index), lines, loader, budget)
            for index, item in enumerate(node.value)
        ]
    return _build_scalar(node, loader)


def _reader_problem(exc: yaml.reader.ReaderError, text: str, path: Path) -> InputError:
    """A character YAML forbids (a C0 control, U+FFFE): PyYAML gives an offset, the user wants a line."""
    line = text.count("\n", 0, max(exc.position, 0)) + 1
    char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return InputError(f"malformed YAML/JSON: character U+{char:04X} is not allowed", where=f"{path}:{line}")


def parse_text(text: str, path: Path) -> SourceDocument:
    lines: dict[str, int] = {}
    try:
        loader = _Loader(text)  # the reader checks every character here, before any parsing
    except yaml.reader.ReaderError as exc:
        raise _reader_problem(exc, text, path) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise InputError("the document is empty", where=str(path))
        data = _construct(root, "", lines, loader, [MAX_NODES])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"malformed YAML/JSON: {exc.problem or exc.context}", where=where) from None
    except yaml.YAMLError as exc:
        raise InputError(f"malformed YAML/JSON: {exc}", where=str(path)) from None
    except _LineError as exc:
        raise InputError(exc.message, where=f"{path}:{exc.line}" if exc.line else str(path)) from None
    except RecursionError:
        raise InputError("document nested too deeply", where=str(path)) from None
    finally:
        loader.dispose()
    return SourceDocument(path=path, data=data, lines=lines)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"malformed JSON: {name} is not a JSON number")


def _keep_digits(digits: str) -> str:
    """JSON syntax check only: numbers are built by the YAML pass, which knows their line."""
    return digits


def _check_json(text: str, path: Path) -> None:
    """Strict JSON: no NaN/Infinity, no trailing commas, no comments (the YAML pass would accept them)."""
    try:
        json.loads(text, parse_constant=_reject_constant, parse_int=_keep_digits, parse_float=_keep_digits)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", where=f"{path}:{exc.lineno}") from None
    except ValueError as exc:
        raise InputError(str(exc), where=str(path)) from None
    except RecursionError:
        raise InputError("document nested too deeply", where=str(path)) from None


def _reject_nul(text: str, path: Path) -> None:
    """A NUL byte means a binary or corrupted file; say so with its line rather than a parser's offset."""
    offset = text.find("\0")
    if offset >= 0:
        line = text.count("\n", 0, offset) + 1
        raise InputError("contains a NUL byte (not a text file?)", where=f"{path}:{line}")


def load_document(path: Path | str) -> SourceDocument:
    """Read and parse a YAML or JSON file, with one-line errors for every failure."""
    path = Path(path)
    try:
        if not path.is_file():
            raise InputError("no such file" if not path.exists() else "not a regular file", where=str(path))
        if path.stat().st_size > MAX_BYTES:
            raise InputError(f"file larger than {MAX_BYTES} bytes", where=str(path))
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", where=str(path)) from None
    except OSError as exc:
        raise InputError(exc.strerror or "cannot read file", where=str(path)) from None
    _reject_nul(text, path)
    if path.suffix.lower() == ".json":
        _check_json(text, path)
    return parse_text(text, path)
