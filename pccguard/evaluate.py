"""Evaluate facts against the rulebook: engine decision → verdicts → ``Report``.

This is the one place verdicts are computed, for the CLI, the serving plugins
and the fixture runner alike. It is fail-closed: an engine error or a rule
missing from the decision becomes ``error``, never ``pass``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pccguard import __version__
from pccguard.catalog import Catalog, load_catalog
from pccguard.engines.base import DecisionDocument, PolicyEngine
from pccguard.errors import EngineError, InputError
from pccguard.facts import DeploymentFacts
from pccguard.metadata import RuleMeta
from pccguard.mitigations import is_valid_mitigation
from pccguard.profiles import Profile
from pccguard.results import FindingResult, Report, RuleResult, Verdict, WaiverRef, summarize
from pccguard.rulebook import Rulebook
from pccguard.waivers import WaiverSet

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
    return data


_MISSING = object()


def _show(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # engines differ: OPA answers 3600.0 where regopy answers 3600
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) or "none"
    return str(value)


def render_message(template: str, params: dict[str, Any], facts_doc: dict[str, Any]) -> str:
    """Fill ``{name}`` from the finding's params, then from facts by dotted path.

    Rendering happens here, not in Rego, because regopy's ``sprintf`` quotes
    strings. Only plain names and dotted paths are substituted: no attribute
    access or format specs, so a template cannot reach into Python objects.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in params:
            return _show(params[name])
        value = _lookup(facts_doc, name)
        return "unknown" if value is _MISSING else _show(value)

    return _PLACEHOLDER.sub(substitute, template)


@dataclass
class Evaluator:
    """Compiled rulebook + profile + engine; evaluate many fact documents."""

    rulebook: Rulebook
    profile: Profile
    engine: PolicyEngine
    catalog: Catalog = field(default_factory=load_catalog)

    def active_rules(self) -> list[RuleMeta]:
        return [r for r in self.rulebook.sorted_rules() if r.id not in self.profile.exclude]

    def input_document(self, facts: DeploymentFacts) -> dict[str, Any]:
        return {"facts": facts.policy_input(), "profile": self.profile.policy_input()}

    def evaluate(
        self,
        facts: DeploymentFacts,
        *,
        waivers: WaiverSet | None = None,
        fail_on: str = "low",
        today: dt.date | None = None,
    ) -> Report:
        input_doc = self.input_document(facts)
        problems = list(waivers.problems) if waivers else []
        decision: DecisionDocument | None = None
        engine_error: str | None = None
        try:
            decision = self.engine.evaluate(input_doc)
        except EngineError as exc:
            engine_error = exc.one_line()
            problems.append(f"policy engine error: {engine_error}")
        if decision is not None:
            for pkg, message in sorted(decision.get("errors", {}).items()):
                problems.append(f"rule package {pkg} failed: {message}")
        results = [
            self._verdict(rule, facts, input_doc["facts"], decision, engine_error, waivers)
            for rule in self.active_rules()
        ]
        titles: dict[str, str] = {letter: req.title for letter, req in self.catalog.requirements.items()}
        return Report(
            tool={"name": "pccguard", "version": __version__},
            deployment={
                "name": facts.deployment.name,
                "engine": facts.deployment.engine,
                "engine_version": facts.deployment.engine_version,
                "plugin_active": facts.runtime.plugin_active,
                "mitigations_active": list(facts.runtime.mitigations_active),
            },
            profile=self.profile.name,
            engine=self.engine.name,
            results=results,
            requirements=summarize(results, titles),
            problems=problems,
            fail_on=fail_on,
        )

    def _verdict(
        self,
        rule: RuleMeta,
        facts: DeploymentFacts,
        facts_doc: dict[str, Any],
        decision: DecisionDocument | None,
        engine_error: str | None,
        waivers: WaiverSet | None,
    ) -> RuleResult:
        severity = self.profile.severity.get(rule.id, rule.severity)

        def result(verdict: Verdict, findings: list[FindingResult] | None = None, **kw: Any) -> RuleResult:
            return RuleResult(rule=rule, severity=severity, verdict=verdict, findings=findings or [], **kw)

        if decision is None:
            return result(Verdict.ERROR, reason=engine_error or "no decision")
        pkg = rule.package.rsplit(".", 1)[-1]
        rule_errors = decision.get("errors", {})
        if pkg in rule_errors:
            return result(Verdict.ERROR, reason=f"rule evaluation failed: {rule_errors[pkg]}")
        if pkg not in decision["applicable"]:
            return result(Verdict.ERROR, reason="the rule produced no decision ('applicable' is undefined)")
        if not decision["applicable"][pkg]:
            return result(Verdict.NOT_APPLICABLE)
        unknown_fails = self.profile.params.get("unknown_facts") == "fail"
        try:
            deny = [self._finding(rule, f, facts, facts_doc) for f in decision["deny"].get(pkg, [])]
            warn = [self._finding(rule, f, facts, facts_doc) for f in decision["warn"].get(pkg, [])]
        except InputError as exc:
            return result(Verdict.ERROR, reason=exc.one_line())
        if unknown_fails:
            deny += [f for f in warn if f.unknown]
            warn = [f for f in warn if not f.unknown]
        active = set(facts.runtime.mitigations_active)
        if deny:
            waiver = waivers.find(rule.id, facts.deployment.name) if waivers else None
            if waiver is not None:
                ref = WaiverRef(
                    rule=waiver.rule,
                    scope=waiver.scope,
                    justification=waiver.justification,
                    owner=waiver.owner,
                    expires=waiver.expires.isoformat(),
                    status="active",
                )
                return result(Verdict.WAIVED, deny + warn, waiver=ref, reason=waiver.justification)
            needed = sorted({f.mitigation for f in deny + warn})
            if active.issuperset(needed):
                return result(Verdict.ENFORCED, deny + warn, reason=f"mitigation {', '.join(needed)} active")
            if rule.id in self.profile.advisory:
                return result(Verdict.WARN, deny + warn, reason=f"advisory under profile {self.profile.name}")
            return result(Verdict.FAIL, deny + warn)
        if warn:
            needed = sorted({f.mitigation for f in warn})
            if active.issuperset(needed):
                return result(Verdict.ENFORCED, warn, reason=f"mitigation {', '.join(needed)} active")
            return result(Verdict.WARN, warn)
        return result(Verdict.PASS)

    @staticmethod
    def _finding(
        rule: RuleMeta, raw: Mapping[str, Any], facts: DeploymentFacts, facts_doc: dict[str, Any]
    ) -> FindingResult:
        params = raw.get("params") or {}
        fact = raw.get("fact") if isinstance(raw.get("fact"), str) else None
        unknown = raw.get("unknown") is True
        mitigation = raw.get("mitigation", rule.mitigation)
        if not isinstance(mitigation, str) or not is_valid_mitigation(mitigation):
            raise InputError(f"rule {rule.id} raised a finding with unknown mitigation id {mitigation!r}")
        if unknown:
            message = f"fact {fact or '?'} is unknown"
        else:
            message = render_message(rule.message, params, facts_doc)
        return FindingResult(
            message=message,
            fact=fact,
            params=params,
            unknown=unknown,
            mitigation=mitigation,
            location=facts.provenance_for(fact) if fact else None,
        )
