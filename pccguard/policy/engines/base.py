"""The one interface every policy engine implements, and the decision document it returns.

Both engines evaluate ``data.pcc.decision`` (``rules/lib/decision.rego``) and
return the same document::

    {"schema": 1,
     "applicable": {"pcc_s_001": true, ...},
     "deny": {"pcc_s_001": [{"fact": "...", "params": {...}}], ...},
     "warn": {...}}

Anything else (an engine error, an undefined decision, a malformed document)
is an ``EngineError``: the caller turns it into ``error`` verdicts, never passes.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict

from pccguard.errors import EngineError

DECISION_QUERY = "x := data.pcc.decision"
DECISION_ENTRYPOINT = "pcc/decision"
DECISION_SCHEMA = 1


class Finding(TypedDict, total=False):
    fact: str
    params: dict[str, Any]


class _DecisionRequired(TypedDict):
    schema: int
    applicable: dict[str, bool]
    deny: dict[str, list[Finding]]
    warn: dict[str, list[Finding]]


class DecisionDocument(_DecisionRequired, total=False):
    #: Rule package → error message, for rules that failed while the others evaluated.
    errors: dict[str, str]


class PolicyEngine(Protocol):
    """Evaluates the compiled rulebook for one input document."""

    name: str

    def evaluate(self, input_doc: dict[str, Any]) -> DecisionDocument: ...


def validate_decision_document(doc: Any) -> DecisionDocument:
    """Check the shape of a decision; anything unexpected is an engine error (fail-closed)."""
    if not isinstance(doc, dict):
        raise EngineError("policy decision is undefined or not an object")
    if doc.get("schema") != DECISION_SCHEMA:
        raise EngineError(f"policy decision has schema {doc.get('schema')!r}, expected {DECISION_SCHEMA}")
    for key in ("applicable", "deny", "warn"):
        part = doc.get(key)
        if not isinstance(part, dict):
            raise EngineError(f"policy decision field {key!r} is missing or not an object")
    errors = doc.get("errors", {})
    if not isinstance(errors, dict) or not all(isinstance(v, str) for v in errors.values()):
        raise EngineError("policy decision field 'errors' is not an object of messages")
    for pkg, flag in doc["applicable"].items():
        if not isinstance(flag, bool):
            raise EngineError(f"rule {pkg}: 'applicable' is not a boolean")
    for key in ("deny", "warn"):
        for pkg, findings in doc[key].items():
            if not isinstance(findings, list):
                raise EngineError(f"rule {pkg}: {key} is not a set")
            for finding in findings:
                if not isinstance(finding, dict) or not isinstance(finding.get("params", {}), dict):
                    raise EngineError(f"rule {pkg}: {key} finding is not an object with params")
    return doc  # type: ignore[return-value]
