"""A small helper that writes a fact value and its provenance together, so neither is ever forgotten."""

from __future__ import annotations

from typing import Any

from pccguard.facts.model import Provenance

#: Flags whose values are secrets: provenance records that they were given, never what they were.
SECRET_FLAGS = frozenset({"--api-key", "--hf-token", "--ssl-keyfile"})
REDACTED = "<redacted>"
_MAX_VALUE = 200


def show(value: Any) -> str | None:
    """A short string for a provenance ``value`` (never the full JSON of a large config)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


class FactBuilder:
    """Accumulates a nested facts document and the provenance of every leaf it sets."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {}
        self.provenance: dict[str, Provenance] = {}

    def set(self, path: str, value: Any, prov: Provenance) -> None:
        parts = path.split(".")
        node = self.doc
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        self.provenance[path] = prov

    def get(self, path: str) -> Any:
        node: Any = self.doc
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node
