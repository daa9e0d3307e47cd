"""Decide what the plugin installs in an engine, through the core's startup enforcement.

The plugin never computes verdicts: it builds facts from the live configuration,
says which mitigations it *can* install here, and lets ``decide_startup``
choose and re-evaluate. A deny that remains refuses the start
(``EnforcementError``), and so does any error before the policy runs, and any
error of the policy itself when the configured fail mode is ``closed``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pccguard.adapters.vllm import IMPLEMENTED_MITIGATIONS
from pccguard.adapters.vllm.runtime import hybrid
from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement import log_allowlist
from pccguard.enforcement.config import PluginConfig, load_plugin_config
from pccguard.enforcement.decide import StartupDecision
from pccguard.enforcement.startup import declared_facts, evaluate_startup, refuse
from pccguard.enforcement.tenancy.identity import TenantResolver
from pccguard.errors import EnforcementError
from pccguard.facts.model import DeploymentFacts
from pccguard.policy.profiles import ProfileParams

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
    #: Residue sampling while serving (``interval_s``, ``blocks``, ``action``), with ``scrub_freed_kv``;
    #: ``None``: not sampled.
    residue: dict[str, Any] | None = None

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
        """The plan as it reached this process; a malformed one refuses the start.

        ``install`` must be given; an omitted setting takes its strict default
        (multi-tenant, fail-closed). Nothing malformed is read as "nothing to
        install", and an installed TTL without its lifetime is refused, never dropped.
        """
        try:
            return cls._parse(data)
        except (TypeError, ValueError) as exc:
            raise EnforcementError(
                f"pccguard refuses to start vllm: the plan in additional_config[{PLAN_KEY!r}] is malformed "
                f"({exc})"
            ) from None

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> RuntimePlan:
        if not isinstance(data, Mapping):
            raise TypeError("not a mapping")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        if "install" not in data:
            raise ValueError("it has no install list")
        install = _strings(data["install"], "install")
        blocking = _strings(data.get("blocking", []), "blocking")
        ttl = data.get("ttl_seconds")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
            raise ValueError("ttl_seconds must be a positive number")
        if "prefix_cache_ttl" in install and ttl is None:
            raise ValueError("prefix_cache_ttl is installed without ttl_seconds")
        tenancy_mode, fail_mode = data.get("tenancy_mode", "multi"), data.get("fail_mode", "closed")
        if tenancy_mode not in ("single", "multi") or fail_mode not in ("closed", "open"):
            raise ValueError("tenancy_mode must be single or multi, fail_mode closed or open")
        max_age = data.get("salt_max_age", 600.0)
        if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0:
            raise ValueError("salt_max_age must be a positive number")
        enclave = data.get("enclave")
        if enclave is not None and not isinstance(enclave, Mapping):
            raise TypeError("enclave must be a mapping")
        return cls(
            install=install,
            ttl_seconds=None if ttl is None else float(ttl),
            tenancy_mode=tenancy_mode,
            salt_max_age=float(max_age),
            fail_mode=fail_mode,
            blocking=blocking,
            enclave=dict(enclave) if enclave else None,
            residue=_residue(data.get("residue")),
        )


def _residue(value: Any) -> dict[str, Any] | None:
    """The sampling settings as the frontend validated them; anything else is a malformed plan."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"interval_s", "blocks", "action"}:
        raise ValueError("residue must map exactly interval_s, blocks and action")
    interval, blocks, action = value["interval_s"], value["blocks"], value["action"]
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise ValueError("residue.interval_s must be a positive number")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= 4096:
        raise ValueError("residue.blocks must be an integer from 1 to 4096")
    if action not in ("stop_admitting", "audit"):
        raise ValueError("residue.action must be stop_admitting or audit")
    return {"interval_s": float(interval), "blocks": blocks, "action": action}


def residue_settings(settings: PluginConfig, install: Sequence[str]) -> dict[str, Any] | None:
    """What the engine core samples with: only where it scrubs, and not when the operator turned it off."""
    wanted = settings.mitigations
    if "scrub_freed_kv" not in install or wanted.residue_sample_interval_seconds is None:
        return None
    return {
        "interval_s": wanted.residue_sample_interval_seconds,
        "blocks": wanted.residue_sample_blocks,
        "action": wanted.residue_on_found,
    }


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a list of strings")
    return tuple(value)


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
    # vLLM has no admin key: the tenant boundary in the API server refuses every operator route.
    if wanted.close_privileged_endpoints and frontend_serving:
        out.append("close_privileged_endpoints")
    # The log canary goes through the API server's request logger: only a serving process proves it.
    if wanted.allowlist_logs and frontend_serving and log_allowlist.offered(facts):
        out.append(log_allowlist.MITIGATION)
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
    """Evaluate the live configuration; raise ``EnforcementError`` when the engine must not start.

    Everything that can fail is done before the policy runs: the configuration,
    the facts, the key file, and the partition plan the enclave executor would
    run. An error there refuses the start whatever ``fail_mode`` says, because
    no check ran at all. The rulebook is then evaluated twice (see
    ``decide_startup``), the second time with the plan when the executor is chosen.
    """
    from pccguard.adapters.vllm.facts import facts_from_config

    env = dict(os.environ if environ is None else environ)
    log = audit_log()
    try:
        loaded = settings or load_plugin_config(env)
        facts = facts_from_config(config, environ=env, engine_args=engine_args, frontend=frontend, live=True)
        facts = declared_facts(facts, loaded)
        TenantResolver(loaded.tenancy)  # a malformed API key file refuses the start, in every process
        installable = installable_mitigations(
            config, facts, loaded, engine_args, frontend_serving=frontend is not None
        )
        # The enclave executor is expensive: installed when a rule asks for it or named by hand.
        always = [m for m in installable if m != hybrid.MITIGATION or hybrid.named_by_hand(engine_args)]
        enclave = hybrid.enclave_settings(facts, loaded)
        # PCC-E-011 judges the plan the executor will run, in the same evaluation as the mitigations.
        planned = (
            hybrid.with_plan_facts(facts, enclave, config.model_config.hf_config.num_hidden_layers)
            if hybrid.MITIGATION in installable
            else facts
        )
    except Exception as exc:  # fail-closed: a broken pccguard never lets an engine start unchecked
        refuse(ENGINE, log, exc)

    def chosen_facts(install: Sequence[str]) -> DeploymentFacts:
        return planned if hybrid.MITIGATION in install else facts

    decision = evaluate_startup(
        ENGINE, facts, installable, loaded, log, always=always, chosen_facts=chosen_facts
    )
    if decision is None:  # fail_mode: open, and the check itself failed
        return RuntimePlan(fail_mode="open"), _empty_decision()
    plan = RuntimePlan(
        install=tuple(decision.install),
        ttl_seconds=loaded.mitigations.prefix_cache_ttl_seconds
        if "prefix_cache_ttl" in decision.install
        else None,
        tenancy_mode=loaded.tenancy.mode,
        salt_max_age=loaded.tenancy.salt_token_max_age_seconds,
        fail_mode=loaded.fail_mode,
        enclave=enclave.to_dict() if hybrid.MITIGATION in decision.install else None,
        residue=residue_settings(loaded, decision.install),
    )
    return plan, decision


def _empty_decision() -> StartupDecision:
    """What ``fail_mode: open`` runs under when the check failed: nothing evaluated, nothing installed."""
    from pccguard.evaluation.results import Report

    report = Report(
        tool={"name": "pccguard"}, deployment={}, profile="none", engine="none", results=[], requirements=[]
    )
    return StartupDecision(report=report, install=[], blocking=[], params=ProfileParams())
