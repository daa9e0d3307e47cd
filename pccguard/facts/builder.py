"""One way to build a facts document from an engine's configuration, shared by every engine adapter.

Each leaf of a facts document is set together with its provenance, so neither
can be forgotten; values are shown in provenance one way (short, secrets never
copied), whatever the engine; and a class or dotted path is named one way
(``qualname``), so a check such as "is this scheduler pccguard's" reads the
same in every adapter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pccguard.facts.model import DeploymentFacts, Provenance

#: What provenance records for a secret that was given (API key, token, key password): never the secret.
REDACTED = "<redacted>"
#: Longest value shown in provenance: a fact's origin, not a copy of a large config.
MAX_SHOWN = 200


def qualname(obj: Any) -> str:
    """``module.QualName`` of a class or function; a string (already a dotted path) as it is."""
    if isinstance(obj, str):
        return obj
    return f"{obj.__module__}.{obj.__qualname__}"


def show(value: Any, *, secret: bool = False) -> str | None:
    """A short, one-line text for a provenance ``value``.

    ``None`` stays ``None`` (nothing was set); a secret that is set is
    :data:`REDACTED`, one that is empty is shown as it is; booleans are ``true``/``false`` as in the facts files;
    mappings are sorted JSON; anything longer than :data:`MAX_SHOWN`
    characters is cut with ``...``.
    """
    if value is None:
        return None
    if secret and value:
        return REDACTED
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = value if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def default(note: str, name: str | None = None) -> Provenance:
    """Provenance of a value the engine fixes (no option changes it): ``note`` says why."""
    return Provenance(kind="default", name=name, value=note)


class FactBuilder:
    """Accumulates a nested facts document and the provenance of every leaf it sets."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {}
        self.provenance: dict[str, Provenance] = {}

    def set(self, path: str, value: Any, prov: Provenance) -> None:
        """Set the leaf at dotted ``path`` to ``value``, recorded as coming from ``prov``."""
        parts = path.split(".")
        node = self.doc
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TypeError(f"facts path {path!r}: {part!r} is already a value, not a section")
            node = child
        node[parts[-1]] = value
        self.provenance[path] = prov

    def get(self, path: str) -> Any:
        """The value at dotted ``path``, or ``None`` when nothing was set there."""
        node: Any = self.doc
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def set_list(self, path: str, items: list[dict[str, Any]], provenance: list[Provenance]) -> None:
        """Set a top-level list (``endpoints``) with one provenance per item, as ``path.<index>``."""
        if len(items) != len(provenance):
            raise ValueError(f"facts list {path!r}: {len(items)} items but {len(provenance)} provenances")
        self.doc[path] = items
        for index, prov in enumerate(provenance):
            self.provenance[f"{path}.{index}"] = prov

    def build(self) -> DeploymentFacts:
        """The validated facts document, provenance included."""
        return DeploymentFacts.model_validate({**self.doc, "provenance": dict(self.provenance)})


def declare_mitigations(
    facts: DeploymentFacts, mitigations: Iterable[str], why: Provenance
) -> DeploymentFacts:
    """``facts`` with pccguard mitigations that the engine's own arguments name, as declarations.

    A check reads the arguments, not a running engine: what they name (for
    example pccguard's encrypting storage backend) is recorded in
    ``runtime.mitigations_active`` with the plugin inactive, so the rules it
    covers read ``declared``. Only the serving plugin, which installs and
    verifies the mitigation, makes them ``enforced``. Engine facts never
    describe a mitigation as an engine property.
    """
    names = sorted(set(facts.runtime.mitigations_active) | set(mitigations))
    if names == sorted(facts.runtime.mitigations_active):
        return facts
    runtime = facts.runtime.model_copy(update={"mitigations_active": names, "plugin_active": False})
    provenance = {**facts.provenance, "runtime.mitigations_active": why}
    return facts.model_copy(update={"runtime": runtime, "provenance": provenance})
