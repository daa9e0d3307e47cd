"""The evaluation result every report formats: verdicts per rule and per requirement.

This is the versioned contract of ``--format json``; reports never compute
verdicts themselves, they only render a ``Report``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pccguard.facts.catalog import LETTERS
from pccguard.facts.model import Provenance
from pccguard.policy.metadata import SEVERITY_RANK, RuleMeta

REPORT_SCHEMA_VERSION = "1.0"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    #: A deny whose mitigations only a document claims (``runtime.plugin_active`` is not true):
    #: a declaration, not an enforcement, so it fails the run like ``fail``.
    DECLARED = "declared"
    WARN = "warn"
    ENFORCED = "enforced"
    WAIVED = "waived"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


#: Worst first: a requirement's verdict is the worst verdict among its rules.
VERDICT_ORDER: tuple[Verdict, ...] = (
    Verdict.ERROR,
    Verdict.FAIL,
    Verdict.DECLARED,
    Verdict.WARN,
    Verdict.ENFORCED,
    Verdict.WAIVED,
    Verdict.PASS,
    Verdict.NOT_APPLICABLE,
)


#: Verdicts that fail the run at or above the ``fail_on`` severity (``error`` fails it at any severity).
FAILING_VERDICTS: frozenset[Verdict] = frozenset({Verdict.FAIL, Verdict.DECLARED})


def worst(verdicts: list[Verdict]) -> Verdict:
    if not verdicts:
        return Verdict.NOT_APPLICABLE
    return min(verdicts, key=VERDICT_ORDER.index)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FindingResult(_Frozen):
    message: str
    fact: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    unknown: bool = False
    mitigation: str = Field(description="The mitigation that would satisfy this finding")
    location: Provenance | None = None


class WaiverRef(_Frozen):
    rule: str
    scope: str
    justification: str
    owner: str
    expires: str
    status: str = Field(description="active, expired or invalid")


class RuleResult(_Frozen):
    rule: RuleMeta
    severity: str = Field(description="Effective severity after profile overrides")
    verdict: Verdict
    findings: list[FindingResult] = Field(default_factory=list)
    reason: str | None = Field(default=None, description="Why the verdict is not the plain one")
    waiver: WaiverRef | None = None

    @property
    def id(self) -> str:
        return self.rule.id


class RequirementSummary(_Frozen):
    letter: str
    title: str
    verdict: Verdict
    counts: dict[str, int]


class Report(_Frozen):
    schema_version: str = REPORT_SCHEMA_VERSION
    tool: dict[str, str]
    deployment: dict[str, Any]
    profile: str
    engine: str
    results: list[RuleResult]
    requirements: list[RequirementSummary]
    problems: list[str] = Field(
        default_factory=list, description="Failures not tied to one rule verdict (bad waivers, engine errors)"
    )
    fail_on: str = "low"

    def failing(self) -> list[RuleResult]:
        """Results that make the run fail at the ``fail_on`` threshold (errors always do)."""
        threshold = SEVERITY_RANK[self.fail_on]
        return [
            r
            for r in self.results
            if r.verdict == Verdict.ERROR
            or (r.verdict in FAILING_VERDICTS and SEVERITY_RANK[r.severity] >= threshold)
        ]

    def has_errors(self) -> bool:
        return any(r.verdict == Verdict.ERROR for r in self.results)

    def exit_code(self) -> int:
        if self.has_errors():
            return 2
        return 1 if self.failing() or self.problems else 0


def summarize(results: list[RuleResult], titles: dict[str, str]) -> list[RequirementSummary]:
    summaries = []
    for letter in LETTERS:
        mine = [r.verdict for r in results if r.rule.requirement == letter]
        counts = {v.value: mine.count(v) for v in VERDICT_ORDER}
        summaries.append(
            RequirementSummary(
                letter=letter, title=titles.get(letter, letter), verdict=worst(mine), counts=counts
            )
        )
    return summaries
