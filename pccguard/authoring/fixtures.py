"""Rule fixtures: facts documents with the verdict a rule must give.

Layout: ``<rules dir>/fixtures/<RULE-ID>/<name>.yaml`` holding::

    expect: fail            # any verdict name
    profile: pcc-strict     # optional, default pcc-strict
    facts: {...}            # a facts document

``pccguard rules test`` and the pytest suite run the same fixtures through the
same evaluator; every rule needs at least one ``pass`` and one ``fail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pccguard.errors import InputError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import Verdict
from pccguard.facts.load import facts_from_data
from pccguard.files.sourcefile import load_document
from pccguard.policy.engines.base import PolicyEngine
from pccguard.policy.profiles import DEFAULT_PROFILE, Profile, load_profile
from pccguard.policy.rulebook import Rulebook

_VERDICTS = {v.value for v in Verdict}


@dataclass(frozen=True)
class Fixture:
    rule_id: str
    path: Path
    expect: Verdict
    profile: str
    facts: dict[str, Any]


@dataclass(frozen=True)
class FixtureOutcome:
    fixture: Fixture
    actual: Verdict
    detail: str

    @property
    def ok(self) -> bool:
        return self.actual == self.fixture.expect


def load_fixture(rule_id: str, path: Path) -> Fixture:
    doc = load_document(path)
    data = doc.data
    if (
        not isinstance(data, dict)
        or not {"expect", "facts"} <= set(data)
        or set(data) - {"expect", "facts", "profile"}
    ):
        raise InputError("a fixture has keys expect, facts and optionally profile", where=str(path))
    if data["expect"] not in _VERDICTS:
        raise InputError(f"unknown expected verdict {data['expect']!r}", where=str(path))
    profile = str(data.get("profile", DEFAULT_PROFILE))
    if profile.endswith((".yaml", ".yml", ".json")) and not Path(profile).is_absolute():
        profile = str(path.parent / profile)  # relative to the fixture, not the working directory
    return Fixture(
        rule_id=rule_id,
        path=path,
        expect=Verdict(data["expect"]),
        profile=profile,
        facts=data["facts"],
    )


def discover(rulebook: Rulebook, only: set[str] | None = None) -> list[Fixture]:
    """Fixtures of every rule in the rulebook (later directories may add to or override earlier ones)."""
    found: dict[tuple[str, str], Fixture] = {}
    for folder in rulebook.fixture_dirs:
        if not folder.is_dir():
            continue
        for rule_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if rule_dir.name not in rulebook.rules:
                # A typo in a folder name would otherwise mean its fixtures silently never run.
                raise InputError(
                    f"fixture folder names no rule in the rulebook: {rule_dir.name}", where=str(rule_dir)
                )
            if only and rule_dir.name not in only:
                continue
            for path in sorted([*rule_dir.glob("*.yaml"), *rule_dir.glob("*.json")]):
                found[(rule_dir.name, path.name)] = load_fixture(rule_dir.name, path)
    return [found[k] for k in sorted(found)]


def missing_coverage(rulebook: Rulebook, fixtures: list[Fixture]) -> list[str]:
    """Rules without at least one passing and one failing fixture."""
    problems = []
    for rule_id in sorted(rulebook.rules):
        kinds = {f.expect for f in fixtures if f.rule_id == rule_id}
        for needed in (Verdict.PASS, Verdict.FAIL):
            if needed not in kinds:
                problems.append(f"{rule_id}: no '{needed.value}' fixture")
    return problems


def run_fixtures(rulebook: Rulebook, engine: PolicyEngine, fixtures: list[Fixture]) -> list[FixtureOutcome]:
    profiles: dict[str, Profile] = {}
    outcomes = []
    for fixture in fixtures:
        if fixture.profile not in profiles:
            profiles[fixture.profile] = load_profile(fixture.profile, rulebook)
        evaluator = Evaluator(rulebook, profiles[fixture.profile], engine)
        facts = facts_from_data(fixture.facts, where=str(fixture.path))
        report = evaluator.evaluate(facts)
        result = next((r for r in report.results if r.id == fixture.rule_id), None)
        if result is None:
            outcomes.append(FixtureOutcome(fixture, Verdict.NOT_APPLICABLE, "rule excluded by profile"))
            continue
        detail = "; ".join(f.message for f in result.findings) or (result.reason or "")
        outcomes.append(FixtureOutcome(fixture, result.verdict, detail))
    return outcomes
