"""Selecting pccguard's enclave executor for a vLLM engine when a rule requires ``hybrid_executor``.

A rule such as PCC-E-010 (private model on an untrusted accelerator) asks for
``hybrid_executor``. The plugin can satisfy it only where the enclave runtime
can actually serve the configuration: a LLaMA-family decoder, one engine
process (no tensor, pipeline or data parallelism), no speculative decoding, no
vLLM-side LoRA, and no other executor named by hand. Anything else leaves the
mitigation uninstallable, so the rule keeps failing and the start is refused.

When the executor is chosen, the rulebook also sees the partition plan it will
run (``model.hybrid_plan``), so PCC-E-011 judges the plan before any process
starts; the enclave checks it again, against the same rule, before it serves.
"""

from __future__ import annotations

from typing import Any

from pccguard.enclave_runtime.facts import MITIGATION, hybrid_plan_facts
from pccguard.enclave_runtime.plan import PrivacySpec
from pccguard.enclave_runtime.vllm_executor import EXECUTOR_QUALNAME
from pccguard.enclave_runtime.vllm_executor.settings import EnclaveSettings
from pccguard.enforcement.config import PluginConfig
from pccguard.facts.builder import qualname
from pccguard.facts.model import DeploymentFacts, HybridPlan, Provenance

#: Architectures the enclave runtime's decoder implements.
SUPPORTED_ARCHITECTURES = frozenset({"LlamaForCausalLM"})


def _backend(engine_args: Any | None) -> Any:
    """``--distributed-executor-backend`` as given (no engine arguments: the scheduler's own check)."""
    return None if engine_args is None else engine_args.distributed_executor_backend


def named_by_hand(engine_args: Any | None) -> bool:
    """The operator passed ``--distributed-executor-backend`` naming pccguard's executor."""
    backend = _backend(engine_args)
    return backend is not None and qualname(backend) == EXECUTOR_QUALNAME


def blockers(config: Any, engine_args: Any | None, facts: DeploymentFacts) -> list[str]:
    """Why the enclave executor cannot serve this configuration (empty: it can).

    The fields are read directly: a configuration without one (another vLLM
    release) is an error that refuses the start, never "not parallel".
    """
    reasons: list[str] = []
    if facts.model.private_adapters:
        # The executor serves the base model only; vLLM's adapters would run outside the enclave.
        reasons.append("private adapters are served by vLLM, not by the enclave")
    architectures = set(getattr(config.model_config.hf_config, "architectures", None) or [])
    if not architectures & SUPPORTED_ARCHITECTURES:
        reasons.append(f"architecture {sorted(architectures) or 'unknown'} is not a LLaMA decoder")
    par = config.parallel_config
    for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
        if int(getattr(par, name)) != 1:
            reasons.append(f"{name.replace('_', '-')} > 1")
    if config.speculative_config is not None:
        reasons.append("speculative decoding")
    if config.lora_config is not None:
        reasons.append("vLLM-side LoRA")
    backend = _backend(engine_args)
    if backend is not None and not named_by_hand(engine_args):
        reasons.append(f"--distributed-executor-backend {qualname(backend)} is set")
    return reasons


def installable(config: Any, engine_args: Any | None, facts: DeploymentFacts, settings: PluginConfig) -> bool:
    return settings.mitigations.hybrid_executor and not blockers(config, engine_args, facts)


def enclave_settings(facts: DeploymentFacts, settings: PluginConfig) -> EnclaveSettings:
    """The plan and privacy the executor starts with, from the declared model facts."""
    return EnclaveSettings(
        plan=settings.mitigations.hybrid_executor_plan, private_base=facts.model.weights == "private"
    )


def with_plan_facts(facts: DeploymentFacts, enclave: EnclaveSettings, n_layers: int) -> DeploymentFacts:
    """``facts`` plus ``model.hybrid_plan`` for the plan the executor will run (read by PCC-E-011)."""
    privacy = PrivacySpec.for_model(
        private_base=enclave.private_base, protect_prompts=enclave.protect_prompts
    )
    summary = hybrid_plan_facts(enclave.partition_plan(), privacy, n_layers)
    model = facts.model.model_copy(update={"hybrid_plan": HybridPlan.model_validate(summary)})
    provenance = dict(facts.provenance)
    provenance["model.hybrid_plan"] = Provenance(
        kind="config", name="mitigations.hybrid_executor_plan", value=enclave.resolved_plan_name()
    )
    return facts.model_copy(update={"model": model, "provenance": provenance})


def select(vllm_config: Any) -> None:
    """Make ``vllm_config`` run on the enclave executor (the engine-core process resolves the name)."""
    vllm_config.parallel_config.distributed_executor_backend = EXECUTOR_QUALNAME
    # The enclave answers each step synchronously; vLLM's async scheduling expects a device queue.
    vllm_config.scheduler_config.async_scheduling = False


__all__ = ["MITIGATION", "blockers", "enclave_settings", "installable", "select", "with_plan_facts"]
