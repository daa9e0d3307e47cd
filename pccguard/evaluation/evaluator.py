"""Evaluate facts against the rulebook: engine decision → verdicts → ``Report``.

This is the one place verdicts are computed, for the CLI, the serving plugins
and the fixture runner alike. It is fail-closed: an engine error or a rule
missing from the decision becomes ``error``, never ``pass``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pccguard import __version__
from pccguard.errors import EngineError, InputError
from pccguard.evaluation.results import FindingResult, Report, RuleResult, Verdict, WaiverRef, summarize
from pccguard.facts.catalog import Catalog, load_catalog
from pccguard.facts.mitigations import is_valid_mitigation
from pccguard.facts.model import DeploymentFacts
from pccguard.policy.engines.base import DecisionDocument, PolicyEngine
from pccguard.policy.metadata import SEVERITY_RANK, RuleMeta
from pccguard.policy.profiles import Profile, UnknownFacts
from pccguard.policy.rulebook import Rulebook
from pccguard.policy.waivers import Waiver, WaiverSet

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

#: Rules at or above this severity fail when a fact they need is unknown, under every profile.
_ALWAYS_DECIDED = SEVERITY_RANK["high"]


def _waiver_ref(waiver: Waiver) -> WaiverRef:
    return WaiverRef(
        rule=waiver.rule,
        scope=waiver.scope,
        justification=waiver.justification,
        owner=waiver.owner,
        expires=waiver.expires.isoformat(),
        status="active",
    )


def _declared_reason(needed: list[str]) -> str:
    """Why a claimed mitigation does not count: only a running plugin's own facts can enforce one."""
    return (
        f"mitigation {', '.join(needed)} declared by the facts, not enforced: only the facts a running "
        "pccguard plugin builds for itself enforce (a facts file always declares)"
    )


def _proven_reason(needed: list[str]) -> str:
    return f"mitigation {', '.join(needed)} active and verified by a self-test on the running engine"


def _unproven_reason(needed: list[str], verified: list[str]) -> str:
    """Why an installed mitigation does not count: the running engine never showed it works."""
    missing = [m for m in needed if m not in verified]
    return (
        f"mitigation {', '.join(missing)} installed but not verified by a self-test on the running engine: "
        "not enforced"
    )


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
    #: Unknown facts always fail rules of high and critical severity (a compliance report). The serving
    #: plugins' start decision sets this to False: an engine process cannot see the facts that are the
    #: deployment's to prove (TEE, TLS termination, attestation), so at start the profile's
    #: ``unknown_facts`` governs every severity and the start log names the undecided rules.
    unknown_high_fails: bool = True

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
                "mitigations_verified": list(facts.runtime.mitigations_verified),
                "selftests": [record.model_dump(mode="json") for record in facts.runtime.selftests],
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
        try:
            deny = [self._finding(rule, f, facts, facts_doc) for f in decision["deny"].get(pkg, [])]
            warn = [self._finding(rule, f, facts, facts_doc) for f in decision["warn"].get(pkg, [])]
        except InputError as exc:
            return result(Verdict.ERROR, reason=exc.one_line())
        # Undecided: the rule warns that a fact it needs is unknown. Where unknown facts fail
        # (always at high and critical severity), those warnings are denies.
        undecided: list[FindingResult] = []
        if self._unknown_fails(severity):
            undecided = [f for f in warn if f.unknown]
            warn = [f for f in warn if not f.unknown]
        known_deny = bool(deny)
        deny += undecided
        findings = deny + warn
        needed = sorted({f.mitigation for f in findings})
        runtime = facts.runtime
        covered = bool(findings) and set(runtime.mitigations_active).issuperset(needed)
        # Enforced needs a running plugin that installed the mitigations *and* proved them by self-test.
        proven = covered and runtime.plugin_active and set(runtime.mitigations_verified).issuperset(needed)
        unproven = covered and runtime.plugin_active and not proven
        if deny:
            waiver = waivers.find(rule.id, facts.deployment.name) if waivers else None
            if waiver is not None:
                return result(
                    Verdict.WAIVED, findings, waiver=_waiver_ref(waiver), reason=waiver.justification
                )
            if proven:
                return result(Verdict.ENFORCED, findings, reason=_proven_reason(needed))
            if unproven:
                verdict = Verdict.WARN if self.profile.params.allow_unverified_mitigations else Verdict.FAIL
                return result(
                    verdict, findings, reason=_unproven_reason(needed, runtime.mitigations_verified)
                )
            forced = (
                bool(undecided) and self.unknown_high_fails and SEVERITY_RANK[severity] >= _ALWAYS_DECIDED
            )
            if rule.id in self.profile.advisory and not forced:
                return result(Verdict.WARN, findings, reason=f"advisory under profile {self.profile.name}")
            if covered:
                return result(Verdict.DECLARED, findings, reason=_declared_reason(needed))
            reason = None if known_deny else self._undecided_reason(severity)
            return result(Verdict.FAIL, findings, reason=reason)
        if warn:
            if proven:
                return result(Verdict.ENFORCED, warn, reason=_proven_reason(needed))
            if unproven:
                return result(
                    Verdict.WARN, warn, reason=_unproven_reason(needed, runtime.mitigations_verified)
                )
            return result(Verdict.WARN, warn, reason=_declared_reason(needed) if covered else None)
        return result(Verdict.PASS)

    def _unknown_fails(self, severity: str) -> bool:
        """Whether an unknown fact fails a rule of this effective severity under this profile.

        Unknown facts never pass: at high and critical severity they always fail,
        so no profile (a shipped one, a user's, or one with a slip in it) can pass
        a deployment nobody described. ``unknown_facts`` governs only the rest.
        """
        if self.unknown_high_fails and SEVERITY_RANK[severity] >= _ALWAYS_DECIDED:
            return True
        return self.profile.params.unknown_facts is UnknownFacts.FAIL

    def _undecided_reason(self, severity: str) -> str:
        """For a rule that fails only because facts are unknown: say so, and which policy made it fail."""
        if self.unknown_high_fails and SEVERITY_RANK[severity] >= _ALWAYS_DECIDED:
            return f"undecided: an unknown fact fails a {severity}-severity rule under every profile"
        return f"undecided: profile {self.profile.name} fails unknown facts (unknown_facts: fail)"

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
