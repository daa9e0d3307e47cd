"""Facts for pccguard's rules: what a checked partition plan lets the rulebook conclude.

Two layers, because rules read only facts and the core facts model is closed
(``extra="forbid"``):

* :func:`core_facts_patch` fills fields the core model already has
  (``model.*``, ``tee.*``, ``runtime.mitigations_active``), so an existing-style
  rule can require ``hybrid_executor`` for private weights on an untrusted
  accelerator today. ``hybrid_executor`` is declared active only for a plan
  that passes the checker without ``allow_insecure``.
* :func:`~.plan.plan_facts` gives the plan-level detail (unblinded or
  obfuscated private offloads, integrity check, plan digest) that a dedicated
  rule would read once the core grows a field for it.
"""

from __future__ import annotations

from typing import Any

from pccguard.enclave_runtime.plan import PartitionPlan, PrivacySpec, plan_facts

MITIGATION = "hybrid_executor"


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
        },
        "tee": {"kind": "software", "attested": attested},
        "runtime": {"plugin_active": True, "mitigations_active": [MITIGATION] if sound else []},
    }
