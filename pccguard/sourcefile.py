"""Load YAML or JSON documents while remembering the line of every value.

Facts files are the path for engines without an adapter, and every fact must
carry its provenance: a file and a line. PyYAML's node graph knows the line of
each scalar, so the loader builds plain Python data and a ``dotted path → line``
map in one pass. JSON is a subset of YAML, so one loader serves both; errors
become one-line ``InputError`` messages naming the file and the line.
"""

from __future__ import annotations

import json
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


_PLAIN_TAGS: dict[type, str] = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}


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
            key = loader.construct_object(key_node, deep=True)
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
    return loader.construct_object(node, deep=True)


def parse_text(text: str, path: Path) -> SourceDocument:
    lines: dict[str, int] = {}
    loader = _Loader(text)
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
    if path.suffix.lower() == ".json":
        try:
            json.loads(
                text, parse_constant=_reject_constant
            )  # strict JSON: no NaN/Infinity, no trailing commas
        except ValueError as exc:
            if not isinstance(exc, json.JSONDecodeError):
                raise InputError(str(exc), where=str(path)) from None
            raise InputError(f"malformed JSON: {exc.msg}", where=f"{path}:{exc.lineno}") from None
    return parse_text(text, path)
