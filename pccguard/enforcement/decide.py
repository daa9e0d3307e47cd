"""Startup enforcement shared by every serving plugin.

The plugin evaluates the live configuration, picks the mitigations that
failing rules ask for and that its adapter can install, re-evaluates with those
mitigations recorded as active, and refuses to start if anything still fails.
An engine adapter never decides verdicts itself: it only reports which
mitigations it implements and installs the ones chosen here.

The rulebook is evaluated exactly twice per decision: once on the facts as
configured, once with the chosen mitigations recorded as active. What a chosen
mitigation itself determines (vLLM: the partition plan of the enclave executor,
which PCC-E-011 judges) joins the facts of the second evaluation, so no third
one is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pccguard.evaluation.results import Report, RuleResult, Verdict
from pccguard.evaluation.settings import LoadedPolicy
from pccguard.facts.model import DeploymentFacts
from pccguard.policy.profiles import ProfileParams

#: Given the chosen mitigations, the facts the second evaluation judges.
ChosenFacts = Callable[[Sequence[str]], DeploymentFacts]


@dataclass(frozen=True)
class StartupDecision:
    report: Report
    install: list[str]
    blocking: list[RuleResult]
    #: The parameters of the profile the decision was made under: an adapter acts on them
    #: (e.g. whether authenticated admin routes stay open) without loading the profile again.
    params: ProfileParams

    @property
    def allowed(self) -> bool:
        return not self.blocking and not self.report.problems


def with_mitigations(facts: DeploymentFacts, mitigations: Iterable[str]) -> DeploymentFacts:
    """A copy of ``facts`` recording that the plugin is active with these mitigations, on their self-tests' word.

    The decision is made before the mitigations exist, so it is conditional:
    it judges the engine as it will serve *if* every chosen mitigation passes
    its start-time self-test (``pccguard.enforcement.selftest``), and the
    start is refused if one does not. The engine therefore never serves under
    a premise that turned out false; the facts it reports afterwards carry
    what the self-tests actually proved.
    """
    chosen = sorted(set(mitigations))
    runtime = facts.runtime.model_copy(
        update={
            "plugin_active": True,
            "mitigations_active": chosen,
            "mitigations_verified": chosen,
            "fail_mode": "closed",
        }
    )
    return facts.model_copy(update={"runtime": runtime})


def decide_startup(
    policy: LoadedPolicy,
    facts: DeploymentFacts,
    installable: Iterable[str],
    *,
    always: Iterable[str] = (),
    chosen_facts: ChosenFacts | None = None,
) -> StartupDecision:
    """Choose mitigations and compute the report the engine would run under.

    ``installable`` is what the adapter implements and the configuration
    enables; ``always`` lists mitigations the adapter installs regardless of
    rules (defence in depth, e.g. scrubbing), which are also recorded.
    ``chosen_facts`` gives the facts to judge once the mitigations are chosen
    (default: ``facts``); it must not fail, so an adapter computes what it
    needs before the policy runs.
    """
    available = set(installable)
    first = policy.evaluate(facts)
    wanted = {
        finding.mitigation
        for result in first.results
        if result.verdict in (Verdict.FAIL, Verdict.WARN)
        for finding in result.findings
    }
    install = sorted((wanted & available) | (set(always) & available))
    judged = chosen_facts(install) if chosen_facts is not None else facts
    final = policy.evaluate(with_mitigations(judged, install))
    return StartupDecision(
        report=final, install=install, blocking=final.failing(), params=policy.evaluator.profile.params
    )


def refusal_message(engine: str, decision: StartupDecision) -> str:
    """One paragraph naming every rule that blocks the start."""
    parts = [f"{r.id} ({r.verdict.value}, {r.severity}): {r.rule.title}" for r in decision.blocking]
    parts += decision.report.problems
    listed = "; ".join(parts) if parts else "unknown reason"
    return f"pccguard refuses to start {engine}: {len(parts)} blocking finding(s) remain after mitigations: {listed}"
