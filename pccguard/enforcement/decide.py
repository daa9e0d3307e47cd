"""Startup enforcement shared by every serving plugin.

The plugin evaluates the live configuration, picks the mitigations that
failing rules ask for and that its adapter can install, re-evaluates with those
mitigations recorded as active, and refuses to start if anything still fails.
An engine adapter never decides verdicts itself: it only reports which
mitigations it implements and installs the ones chosen here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pccguard.errors import EnforcementError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import Report, RuleResult, Verdict
from pccguard.facts.model import DeploymentFacts
from pccguard.policy.waivers import WaiverSet


@dataclass(frozen=True)
class StartupDecision:
    report: Report
    install: list[str]
    blocking: list[RuleResult]

    @property
    def allowed(self) -> bool:
        return not self.blocking and not self.report.problems


def with_mitigations(facts: DeploymentFacts, mitigations: Iterable[str]) -> DeploymentFacts:
    """A copy of ``facts`` recording that the plugin is active with these mitigations."""
    runtime = facts.runtime.model_copy(
        update={"plugin_active": True, "mitigations_active": sorted(set(mitigations)), "fail_mode": "closed"}
    )
    return facts.model_copy(update={"runtime": runtime})


def decide_startup(
    evaluator: Evaluator,
    facts: DeploymentFacts,
    installable: Iterable[str],
    *,
    waivers: WaiverSet | None = None,
    fail_on: str = "low",
    always: Iterable[str] = (),
) -> StartupDecision:
    """Choose mitigations and compute the report the engine would run under.

    ``installable`` is what the adapter implements and the configuration
    enables; ``always`` lists mitigations the adapter installs regardless of
    rules (defence in depth, e.g. scrubbing), which are also recorded.
    """
    available = set(installable)
    first = evaluator.evaluate(facts, waivers=waivers, fail_on=fail_on)
    wanted = {
        finding.mitigation
        for result in first.results
        if result.verdict in (Verdict.FAIL, Verdict.WARN)
        for finding in result.findings
    }
    install = sorted((wanted & available) | (set(always) & available))
    final = evaluator.evaluate(with_mitigations(facts, install), waivers=waivers, fail_on=fail_on)
    return StartupDecision(report=final, install=install, blocking=final.failing())


def refusal_message(engine: str, decision: StartupDecision) -> str:
    """One paragraph naming every rule that blocks the start."""
    parts = [f"{r.id} ({r.verdict.value}, {r.severity}): {r.rule.title}" for r in decision.blocking]
    parts += decision.report.problems
    listed = "; ".join(parts) if parts else "unknown reason"
    return f"pccguard refuses to start {engine}: {len(parts)} blocking finding(s) remain after mitigations: {listed}"


def enforce_or_refuse(engine: str, decision: StartupDecision) -> None:
    if not decision.allowed:
        raise EnforcementError(refusal_message(engine, decision))
