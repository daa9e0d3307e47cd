"""Facts for pccguard's rules: what a checked partition plan lets the rulebook conclude.

Two layers, because rules read only facts and the core facts model is closed
(``extra="forbid"``):

* :func:`core_facts_patch` fills fields the core model already has
  (``model.*``, ``tee.*``, ``runtime.mitigations_active``), so an existing-style
  rule can require ``hybrid_executor`` for private weights on an untrusted
  accelerator today. ``hybrid_executor`` is declared active only for a plan
  that passes the checker without ``allow_insecure``.
* :func:`~.plan.plan_facts` gives the plan-level detail (unblinded or
  obfuscated private offloads, integrity check, plan digest) as
  ``model.hybrid_plan``, which rule PCC-E-011 reads.

:func:`check_plan_against_rules` runs that rule through pccguard's own
evaluator before the enclave serves, so the plan is held to the rulebook, not
only to the checker in ``plan.py``.
"""

from __future__ import annotations

from typing import Any

from pccguard.enclave_runtime.plan import PartitionPlan, PlanError, PrivacySpec, plan_facts

MITIGATION = "hybrid_executor"
PLAN_RULE = "PCC-E-011"


def hybrid_plan_facts(plan: PartitionPlan, privacy: PrivacySpec, n_layers: int) -> dict[str, Any]:
    """``model.hybrid_plan``: the plan summary without the checker's free-text violations."""
    summary = plan_facts(plan, privacy, n_layers)
    return {k: v for k, v in summary.items() if k != "violations"}


def check_plan_against_rules(plan: PartitionPlan, privacy: PrivacySpec, n_layers: int) -> None:
    """Evaluate PCC-E-011 on the plan with the shipped rulebook; raise ``PlanError`` unless it passes."""
    from pccguard.evaluation.settings import build_evaluator
    from pccguard.facts.load import facts_from_data

    evaluator = build_evaluator()
    facts = facts_from_data(
        {
            "deployment": {"name": f"hybrid-{plan.name}", "engine": "pccguard-hybrid"},
            "model": {
                "weights": "private" if privacy.base_private else "public",
                "private_adapters": bool(privacy.deltas),
                "accelerator_trusted": False,
                "hybrid_plan": hybrid_plan_facts(plan, privacy, n_layers),
            },
        }
    )
    result = next(r for r in evaluator.evaluate(facts).results if r.id == PLAN_RULE)
    if result.verdict.value not in ("pass", "warn"):
        detail = "; ".join(f.message for f in result.findings) or result.reason or result.verdict.value
        raise PlanError(f"plan {plan.name!r} fails {PLAN_RULE}: {detail}")


def core_facts_patch(
    plan: PartitionPlan, privacy: PrivacySpec, n_layers: int, *, attested: bool
) -> dict[str, Any]:
    """A partial ``DeploymentFacts`` document (``model``, ``tee``, ``runtime``) for this executor."""
    summary = plan_facts(plan, privacy, n_layers)
    sound = not summary["violations"]
    return {
        "model": {
            "weights": "private" if privacy.base_private else "public",
            "private_adapters": bool(privacy.deltas),
            "accelerator_trusted": False,
            "hybrid_plan": hybrid_plan_facts(plan, privacy, n_layers),
        },
        "tee": {"kind": "software", "attested": attested},
        "runtime": {"plugin_active": True, "mitigations_active": [MITIGATION] if sound else []},
    }
