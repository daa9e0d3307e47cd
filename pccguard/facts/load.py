"""Load facts documents from YAML or JSON files, attaching file:line provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pccguard.errors import InputError
from pccguard.facts.model import DeploymentFacts, Provenance
from pccguard.files.sourcefile import SourceDocument, load_document
from pccguard.files.validation import describe


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
    _check_version(facts, doc, where)
    return facts


def _check_version(facts: DeploymentFacts, doc: SourceDocument | None, where: str) -> None:
    """Compute ``version_tuple`` now, so a version part too long to be a Python int fails here, placed.

    It is a computed field, built on every dump: left alone, a 5,000-digit part
    (over ``sys.get_int_max_str_digits()``) would fail later, in the engine or a
    report, with no file or line.
    """
    try:
        _ = facts.deployment.version_tuple
    except ValueError:
        line = doc.line_of("deployment.engine_version") if doc is not None else None
        raise InputError(
            "deployment.engine_version: a version part has too many digits",
            where=f"{where}:{line}" if line else where,
        ) from None


def load_facts(path: Path | str) -> DeploymentFacts:
    """Read a facts file. Facts without explicit provenance get the file and line they were read from.

    A document cannot show that a plugin is running: whatever it says about
    ``runtime.plugin_active``, its ``mitigations_active`` are declarations, and
    the rules they would cover read ``declared``, never ``enforced``. Only the
    facts a serving plugin builds for itself, in the engine it guards, enforce.
    """
    doc = load_document(path)
    facts = facts_from_data(doc.data, doc=doc, where=str(doc.path))
    facts.runtime.plugin_active = False
    explicit = dict(facts.provenance)
    for dotted, line in doc.lines.items():
        if dotted.startswith("provenance") or dotted in explicit:
            continue
        explicit[dotted] = Provenance(kind="file", uri=str(doc.path), line=line)
    facts.provenance = explicit
    return facts


def facts_document(facts: DeploymentFacts) -> dict[str, Any]:
    """``facts`` as a facts document that ``load_facts`` accepts: input fields only, provenance included.

    ``model_dump`` also writes computed fields (``deployment.version_tuple``),
    which the models rightly refuse on input; dropping them here, by walking
    the models rather than naming fields, keeps ``pccguard facts`` output a
    valid ``pccguard check`` input whatever computed fields are added later.
    """
    document: dict[str, Any] = _input_fields(facts, facts.model_dump(mode="json"))
    return document


def _input_fields(value: Any, dumped: Any) -> Any:
    """``dumped`` (the JSON dump of ``value``) without the computed fields of any model inside it."""
    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        computed = type(value).model_computed_fields
        return {
            key: _input_fields(getattr(value, key, None), item)
            for key, item in dumped.items()
            if key not in computed
        }
    if isinstance(value, list | tuple) and isinstance(dumped, list) and len(value) == len(dumped):
        return [_input_fields(v, d) for v, d in zip(value, dumped, strict=True)]
    if isinstance(value, dict) and isinstance(dumped, dict):
        return {key: _input_fields(value.get(key), item) for key, item in dumped.items()}
    return dumped
