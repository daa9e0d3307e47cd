"""Policy engines: the embedded regopy default and a central OPA server."""

from pccguard.policy.engines.base import DecisionDocument, PolicyEngine, validate_decision_document

__all__ = ["DecisionDocument", "PolicyEngine", "validate_decision_document"]
