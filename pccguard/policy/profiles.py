"""Profiles: data that selects rules, tunes their parameters and overrides severities.

A profile never copies a rule. ``pcc-strict`` and ``multi-tenant-baseline`` run
the same Rego; they differ only in ``params`` (read by rules as
``input.profile.params``) and in which rules are advisory.

A profile file is validated against a schema, because a slip in it silently
weakens every check that runs under it: ``unknown_facts: FAIL``, a misspelt
``allow_metrcs`` or ``max_prefix_cache_ttl_seconds: "600"`` would otherwise be
read by the rules as "parameter absent" or as a string. ``ProfileParams`` holds
exactly the parameters the shipped rules read (``lib.param(...)``) and the one
the evaluator reads (``unknown_facts``); every omitted parameter defaults to its
strictest value, so deleting a line can only make a profile stricter.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pccguard.errors import InputError
from pccguard.files.resources import shipped_rules_dir
from pccguard.files.sourcefile import load_document
from pccguard.files.validation import describe
from pccguard.policy.metadata import Severity
from pccguard.policy.rulebook import Rulebook

DEFAULT_PROFILE = "pcc-strict"

#: The longest prefix-cache lifetime a profile may allow: past a day a "cache" is a store of user prompts.
MAX_PREFIX_CACHE_TTL_LIMIT = 86_400


class UnknownFacts(StrEnum):
    """What a warning about an unknown fact becomes on a rule below high severity.

    On a high or critical rule an unknown fact always fails, whatever the
    profile says (see ``Evaluator._verdict``); this only governs the rest.
    """

    FAIL = "fail"
    WARN = "warn"


class ProfileParams(BaseModel):
    """The parameters rules read as ``input.profile.params``; each default is the strict choice.

    Strict types: YAML that says ``"600"`` or ``"false"`` is a mistake to report,
    not a value to coerce. ``unknown_facts`` accepts only the enum's exact values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    unknown_facts: UnknownFacts = Field(
        default=UnknownFacts.FAIL,
        strict=False,  # the enum's values from YAML text; "FAIL" or null are still rejected
        description="What an unknown fact makes a rule below high severity: fail, or warn",
    )
    max_prefix_cache_ttl_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_PREFIX_CACHE_TTL_LIMIT,
        description="Longest lifetime of an isolated prefix cache entry (0: none may outlive a request)",
    )
    allow_isolated_prefix_cache: bool = Field(
        default=False, description="Prefix caches isolated per tenant by the server are accepted"
    )
    allow_cross_host_kv: bool = Field(
        default=False, description="KV may leave the node over an authenticated, encrypted channel"
    )
    allow_metrics: bool = Field(default=False, description="Cache-hit metrics may be exported behind auth")
    allow_tenant_spec_corpus: bool = Field(
        default=False, description="Database speculation may keep a per-tenant store"
    )
    allow_unverified_mitigations: bool = Field(
        default=False,
        description="A mitigation installed but not proven by a start-time self-test warns instead of failing",
    )
    allow_authenticated_admin_endpoints: bool = Field(
        default=False, description="Admin and weight endpoints are accepted when they require auth"
    )
    allow_metadata_tracing: bool = Field(default=False, description="Traces without content may be exported")
    require_reproducible_build: bool = Field(
        default=True, description="Measurements must be reproducible from source"
    )


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    params: ProfileParams = Field(default_factory=ProfileParams)
    exclude: list[str] = Field(default_factory=list, description="Rule ids not evaluated")
    advisory: list[str] = Field(default_factory=list, description="Rule ids reported as warn, not fail")
    severity: dict[str, Severity] = Field(default_factory=dict, description="Severity overrides by rule id")

    def policy_input(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params.model_dump(mode="json")}

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
