"""Decide what the plugin installs in an engine, through the core's startup enforcement.

The plugin never computes verdicts: it builds facts from the live configuration,
says which mitigations it *can* install here, and lets ``decide_startup``
choose and re-evaluate. A deny that remains refuses the start
(``EnforcementError``), and so does any unexpected error in pccguard itself
when the configured fail mode is ``closed``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pccguard.adapters.vllm import IMPLEMENTED_MITIGATIONS
from pccguard.adapters.vllm.runtime import hybrid
from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement.config import PluginConfig, load_plugin_config
from pccguard.enforcement.decide import StartupDecision
from pccguard.enforcement.startup import declared_facts, evaluate_startup, refuse_on_error
from pccguard.facts.model import DeploymentFacts

ENGINE = "vllm"
#: Key of the plan inside ``VllmConfig.additional_config`` (it travels to the engine-core process).
PLAN_KEY = "pccguard"
#: Attribute of ``VllmConfig`` carrying the salt key set to the engine core (not a field: never logged or hashed).
KEYS_ATTR = "_pccguard_salt_keys"
#: The native offloading specs the encrypted spec can replace (same manager, encrypting worker).
ENCRYPTABLE_SPECS = ("CPUOffloadingSpec", "EncryptedCPUOffloadingSpec")
#: Served by the tenant middleware's ``/metrics`` filter (see ``metrics_filter``).
DROP_HIT_METRICS = "disable:cache_hit_metrics"


@dataclass(frozen=True)
class RuntimePlan:
    """What the engine runs with; no secrets (they are generated in the process that uses them)."""

    install: tuple[str, ...] = ()
    ttl_seconds: float | None = None
    tenancy_mode: str = "multi"
    salt_max_age: float = 600.0
    fail_mode: str = "closed"
    blocking: tuple[str, ...] = field(default=())
    #: Enclave executor settings when ``hybrid_executor`` is installed (read by the executor).
    enclave: dict[str, Any] | None = None

    def has(self, mitigation: str) -> bool:
        return mitigation in self.install

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (it travels inside ``VllmConfig.additional_config``)."""
        data = asdict(self)
        data["install"] = list(self.install)
        data["blocking"] = list(self.blocking)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimePlan:
        return cls(
            install=tuple(data.get("install", ())),
            ttl_seconds=data.get("ttl_seconds"),
            tenancy_mode=str(data.get("tenancy_mode", "multi")),
            salt_max_age=float(data.get("salt_max_age", 600.0)),
            fail_mode=str(data.get("fail_mode", "closed")),
            blocking=tuple(data.get("blocking", ())),
            enclave=dict(data["enclave"]) if data.get("enclave") else None,
        )


def offload_spec_name(config: Any) -> str | None:
    """The offloading spec of a native ``OffloadingConnector``, or None when KV is not offloaded that way."""
    ktc = getattr(config, "kv_transfer_config", None)
    if ktc is None or ktc.kv_connector != "OffloadingConnector":
        return None
    return str((ktc.kv_connector_extra_config or {}).get("spec_name", "CPUOffloadingSpec"))


def installable_mitigations(
    config: Any,
    facts: DeploymentFacts,
    settings: PluginConfig,
    engine_args: Any | None = None,
    *,
    frontend_serving: bool = False,
) -> list[str]:
    """What this adapter can install for this configuration, as enabled by the plugin configuration."""
    from pccguard.adapters.vllm.facts import sleep_mode_requested

    wanted = settings.mitigations
    opt = facts.optimizations
    out: list[str] = []
    # Sleep mode gives KV memory back to the allocator without a scrub: no scrub guarantee holds.
    if wanted.scrub_freed_kv and not sleep_mode_requested(config):
        out.append("scrub_freed_kv")
    if wanted.tenant_cache_salt and opt.prefix_caching.enabled:
        out.append("tenant_cache_salt")
    if wanted.prefix_cache_ttl_seconds and opt.prefix_caching.enabled:
        out.append("prefix_cache_ttl")
    if wanted.encrypt_offload and offload_spec_name(config) in ENCRYPTABLE_SPECS:
        out.append("encrypt_offload")
    if opt.priority_scheduling.enabled:
        out.append("server_side_priority")
    metrics = facts.observability.metrics
    # The filter lives in the API server's middleware: only a serving process has both.
    if wanted.drop_cache_hit_metrics and metrics.enabled and frontend_serving:
        out.append(DROP_HIT_METRICS)
    if hybrid.installable(config, engine_args, facts, settings):
        out.append(hybrid.MITIGATION)
    return [m for m in out if m in IMPLEMENTED_MITIGATIONS]


def decide(
    config: Any,
    *,
    environ: Mapping[str, str] | None = None,
    settings: PluginConfig | None = None,
    engine_args: Any | None = None,
    frontend: Any | None = None,
) -> tuple[RuntimePlan, StartupDecision]:
    """Evaluate the live configuration; raise ``EnforcementError`` when the engine must not start."""
    from pccguard.adapters.vllm.facts import facts_from_config

    env = dict(os.environ if environ is None else environ)
    log = audit_log()
    loaded: PluginConfig | None = settings
    try:
        loaded = settings or load_plugin_config(env)
        facts = facts_from_config(config, environ=env, engine_args=engine_args, frontend=frontend, live=True)
        facts = declared_facts(facts, loaded)
        installable = installable_mitigations(
            config, facts, loaded, engine_args, frontend_serving=frontend is not None
        )
        # The enclave executor is expensive: installed when a rule asks for it or named by hand.
        always = [m for m in installable if m != hybrid.MITIGATION or hybrid.named_by_hand(engine_args)]
        enclave = hybrid.enclave_settings(facts, loaded)
    except Exception as exc:  # fail-closed: a broken pccguard never lets an engine start unchecked
        refuse_on_error(ENGINE, loaded, log, exc)
        return RuntimePlan(fail_mode="open"), _empty_decision()
    settings = loaded
    decision = evaluate_startup(ENGINE, facts, installable, settings, log, always=always)
    if decision is not None and hybrid.MITIGATION in decision.install:
        # Judge the plan the executor will run too (PCC-E-011), with the same mitigations.
        try:
            planned = hybrid.with_plan_facts(facts, enclave, config.model_config.hf_config.num_hidden_layers)
        except Exception as exc:
            refuse_on_error(ENGINE, settings, log, exc)
            return RuntimePlan(fail_mode="open"), _empty_decision()
        decision = evaluate_startup(ENGINE, planned, decision.install, settings, log, always=decision.install)
    if decision is None:  # fail_mode: open, and the check itself failed
        return RuntimePlan(fail_mode="open"), _empty_decision()
    plan = RuntimePlan(
        install=tuple(decision.install),
        ttl_seconds=settings.mitigations.prefix_cache_ttl_seconds
        if "prefix_cache_ttl" in decision.install
        else None,
        tenancy_mode=settings.tenancy.mode,
        salt_max_age=settings.tenancy.salt_token_max_age_seconds,
        fail_mode=settings.fail_mode,
        enclave=enclave.to_dict() if hybrid.MITIGATION in decision.install else None,
    )
    return plan, decision


def _empty_decision() -> StartupDecision:
    from pccguard.evaluation.results import Report

    report = Report(
        tool={"name": "pccguard"}, deployment={}, profile="none", engine="none", results=[], requirements=[]
    )
    return StartupDecision(report=report, install=[], blocking=[])
