"""Load facts documents from YAML or JSON files, attaching file:line provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pccguard.errors import InputError
from pccguard.facts import DeploymentFacts, Provenance
from pccguard.sourcefile import SourceDocument, load_document
from pccguard.validation import describe


def facts_from_data(data: Any, *, doc: SourceDocument | None = None, where: str = "facts") -> DeploymentFacts:
    """Validate a facts mapping; errors name the field (and the line when known)."""
    if not isinstance(data, dict):
        raise InputError("a facts document must be a mapping", where=where)
    try:
        facts = DeploymentFacts.model_validate(data)
    except ValidationError as exc:
        message, line = describe(exc, doc)
        raise InputError(message, where=f"{where}:{line}" if line else where) from None
    except InputError as exc:  # raised by validators (e.g. an unknown mitigation id)
        raise InputError(exc.message, where=where) from None
    return facts


def load_facts(path: Path | str) -> DeploymentFacts:
    """Read a facts file. Facts without explicit provenance get the file and line they were read from."""
    doc = load_document(path)
    facts = facts_from_data(doc.data, doc=doc, where=str(doc.path))
    explicit = dict(facts.provenance)
    for dotted, line in doc.lines.items():
        if dotted.startswith("provenance") or dotted in explicit:
            continue
        explicit[dotted] = Provenance(kind="file", uri=str(doc.path), line=line)
    facts.provenance = explicit
    return facts
