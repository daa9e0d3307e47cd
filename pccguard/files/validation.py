"""Turn pydantic validation errors into one line that names the field and the file line."""

from __future__ import annotations

from pydantic import ValidationError

from pccguard.files.sourcefile import SourceDocument


def describe(exc: ValidationError, doc: SourceDocument | None = None) -> tuple[str, int | None]:
    """``(message, line)`` for the first error, with a count of the others."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    dotted = ".".join(str(part) for part in first["loc"]) or "(document)"
    msg = first["msg"].lower()
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    text = f"{dotted}: {msg}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    line = doc.line_of(dotted) if doc is not None else None
    return text, line
