"""What the enclave executor runs with: the partition plan and which model parts are private.

Two sources, in this order:

1. the pccguard plugin's decision, carried to the engine-core process inside
   ``VllmConfig.additional_config["pccguard"]["enclave"]`` (the plugin derives
   it from the declared model facts and ``PCCGUARD_CONFIG``);
2. for an executor named by hand with ``--distributed-executor-backend``,
   the environment: ``PCCGUARD_ENCLAVE_PLAN`` (``default``, ``all-enclave``,
   ``all-clear`` or a plan file) and ``PCCGUARD_ENCLAVE_PRIVATE_BASE=1``.

This module imports neither vLLM nor torch: the plugin uses it while it
decides, before any engine process exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pccguard.enclave_runtime.plan import (
    PartitionPlan,
    PlanError,
    all_clear_plan,
    all_enclave_plan,
    default_plan,
    load_plan,
)

#: Plan names the executor knows without a file; ``auto`` picks by the model's privacy.
NAMED_PLANS = {"default": default_plan, "all-enclave": all_enclave_plan, "all-clear": all_clear_plan}
#: Where the plugin puts these settings inside its plan in ``additional_config``.
SETTINGS_KEY = "enclave"


@dataclass(frozen=True)
class EnclaveSettings:
    """The plan name (or file) and the privacy options the enclave is started and measured with."""

    plan: str = "default"
    private_base: bool = False

    @property
    def protect_prompts(self) -> bool:
        """Only the all-clear baseline sends prompts' activations to the accelerator unprotected."""
        return self.plan != "all-clear"

    def resolved_plan_name(self) -> str:
        if self.plan != "auto":
            return self.plan
        # A private base cannot leave the enclave: one-time pads blind inputs, never weights.
        return "all-enclave" if self.private_base else "default"

    def partition_plan(self) -> PartitionPlan:
        name = self.resolved_plan_name()
        factory = NAMED_PLANS.get(name)
        return factory() if factory else load_plan(name)

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.resolved_plan_name(), "private_base": self.private_base}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnclaveSettings:
        plan, private = data.get("plan", "default"), data.get("private_base", False)
        if not isinstance(plan, str) or not plan or not isinstance(private, bool):
            raise PlanError("enclave settings: plan must be a name or path, private_base a boolean")
        return cls(plan=plan, private_base=private)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnclaveSettings:
        env = os.environ if environ is None else environ
        flag = env.get("PCCGUARD_ENCLAVE_PRIVATE_BASE", "0")
        if flag not in ("0", "1"):
            raise PlanError(f"PCCGUARD_ENCLAVE_PRIVATE_BASE must be 0 or 1, not {flag!r}")
        return cls(plan=env.get("PCCGUARD_ENCLAVE_PLAN", "default") or "default", private_base=flag == "1")


def settings_for(additional_config: Any, environ: Mapping[str, str] | None = None) -> EnclaveSettings:
    """The plugin's settings when it selected the executor, else the environment's."""
    plugin = additional_config.get("pccguard") if isinstance(additional_config, Mapping) else None
    if isinstance(plugin, Mapping) and isinstance(plugin.get(SETTINGS_KEY), Mapping):
        return EnclaveSettings.from_dict(plugin[SETTINGS_KEY])
    return EnclaveSettings.from_env(environ)
