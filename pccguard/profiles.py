"""Profiles: data that selects rules, tunes their parameters and overrides severities.

A profile never copies a rule. ``pcc-strict`` and ``multi-tenant-baseline`` run
the same Rego; they differ only in ``params`` (read by rules as
``input.profile.params``) and in which rules are advisory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pccguard.errors import InputError
from pccguard.metadata import Severity
from pccguard.resources import shipped_rules_dir
from pccguard.rulebook import Rulebook
from pccguard.sourcefile import load_document
from pccguard.validation import describe

DEFAULT_PROFILE = "pcc-strict"


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    params: dict[str, Any] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list, description="Rule ids not evaluated")
    advisory: list[str] = Field(default_factory=list, description="Rule ids reported as warn, not fail")
    severity: dict[str, Severity] = Field(default_factory=dict, description="Severity overrides by rule id")

    def policy_input(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}

    def check_against(self, rulebook: Rulebook, where: str) -> None:
        for group in (self.exclude, self.advisory, list(self.severity)):
            for rule_id in group:
                if rule_id not in rulebook.rules:
                    raise InputError(f"profile {self.name!r} names unknown rule {rule_id}", where=where)


def shipped_profiles() -> dict[str, Path]:
    return {p.stem: p for p in sorted((shipped_rules_dir() / "profiles").glob("*.yaml"))}


def load_profile(name_or_path: str, rulebook: Rulebook | None = None) -> Profile:
    """A shipped profile by name, or a profile file by path."""
    shipped = shipped_profiles()
    if name_or_path in shipped:
        path = shipped[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.exists():
            known = ", ".join(sorted(shipped))
            raise InputError(f"unknown profile {name_or_path!r} (shipped: {known}; or give a file path)")
    doc = load_document(path)
    try:
        profile = Profile.model_validate(doc.data)
    except ValidationError as exc:
        message, line = describe(exc, doc)
        raise InputError(message, where=f"{path}:{line}" if line else str(path)) from None
    if rulebook is not None:
        profile.check_against(rulebook, str(path))
    return profile
