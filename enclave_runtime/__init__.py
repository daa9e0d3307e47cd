"""SecureInfer-style enclave–accelerator hybrid executor for LLaMA, with its extraction-attack suite.

Public API: :class:`HybridExecutor` (start, verify, generate), the partition
plans and their checker (:mod:`.plan`), attestation (:mod:`.attestation`).
Imports are lazy so that the enclave process loads only what it measures.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "GenerationResult",
    "HybridExecutor",
    "PartitionPlan",
    "PlanError",
    "PrivacySpec",
    "all_enclave_plan",
    "check_plan",
    "default_plan",
    "insecure_obfuscation_plan",
    "load_plan",
    "plan_facts",
]

_PLAN_NAMES = {
    "PartitionPlan",
    "PlanError",
    "PrivacySpec",
    "check_plan",
    "default_plan",
    "all_enclave_plan",
    "insecure_obfuscation_plan",
    "plan_facts",
    "load_plan",
}


def __getattr__(name: str) -> Any:
    if name in _PLAN_NAMES:
        from pccguard.enclave_runtime import plan

        return getattr(plan, name)
    if name in ("HybridExecutor", "GenerationResult"):
        from pccguard.enclave_runtime import executor

        return getattr(executor, name)
    raise AttributeError(name)
