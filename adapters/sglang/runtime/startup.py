"""Startup enforcement: facts from the resolved server arguments, decision, refusal.

Runs in every SGLang process that resolves or receives server arguments — after
``ServerArgs.resolve_once`` in the launcher and at ``Scheduler.__init__`` in each
scheduler process — and once more when the memory pools exist, to check that
the allocator, KV pool and tree are kinds the installed hooks cover. Verdicts
come only from the shared ``pccguard.enforcement.startup.evaluate_startup``; this
module supplies the facts and the mitigations this adapter can install for this
configuration. Any error here, pccguard's own included, refuses the start
(fail-closed), unless the configuration says ``fail_mode: open``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pccguard.enforcement import log_allowlist
from pccguard.enforcement.audit import AuditKind
from pccguard.enforcement.config import PluginConfig, load_plugin_config
from pccguard.enforcement.startup import declared_facts, evaluate_startup, refuse
from pccguard.enforcement.tenancy.gate import SaltGate
from pccguard.enforcement.tenancy.identity import TenantResolver
from pccguard.enforcement.tenancy.salts import adopt_process_keys, process_keys
from pccguard.errors import EnforcementError
from pccguard.facts.model import DeploymentFacts

from ..facts import PCCGUARD_STORAGE_CLASS, facts_from_server_args
from . import logs, scrub, ttl
from .state import STATE, Enforcement

#: Attribute of the resolved ``ServerArgs`` that carries the salt key set to the scheduler processes.
KEYS_ATTR = "_pccguard_salt_keys"

logger = logging.getLogger("pccguard.sglang")

ENGINE = "sglang"

#: Everything this adapter implements (subject to configuration and engine kind).
IMPLEMENTED = frozenset(
    {
        "scrub_freed_kv",
        "tenant_cache_salt",
        "prefix_cache_ttl",
        "close_privileged_endpoints",
        "disable:runtime_updates",
        "cache_agnostic_scheduling",
        "per_tenant_spec_corpus",
        "server_side_priority",
        "allowlist_logs",
    }
)


def runtime_facts(server_args: Any, config: PluginConfig) -> DeploymentFacts:
    """Facts of the live engine plus what the plugin's configuration declares (tenancy).

    The facts say what the engine does; what pccguard installs on top is listed
    by the decision (``mitigations_active``), as in vLLM, so the same posture
    gets the same verdict (``enforced``) in both engines.
    """
    return declared_facts(facts_from_server_args(server_args, os.environ, resolved=True), config)


def installable(server_args: Any, config: PluginConfig, facts: DeploymentFacts) -> set[str]:
    """What can be installed for this configuration and is enabled in the plugin config."""
    from sglang.srt.arg_groups.overrides import resolution_result

    def get(name: str) -> Any:
        return resolution_result(server_args, name)

    from .hooks import UNAVAILABLE

    m = config.mitigations
    out = set(IMPLEMENTED) - UNAVAILABLE
    if not m.scrub_freed_kv:
        out.discard("scrub_freed_kv")
    if not m.tenant_cache_salt:
        out.discard("tenant_cache_salt")
    if not m.close_privileged_endpoints:
        out -= {"close_privileged_endpoints", "disable:runtime_updates"}
    if not m.allowlist_logs or not log_allowlist.offered(facts):
        out.discard(log_allowlist.MITIGATION)
    plain_tree = not (
        get("disable_radix_cache")
        or get("enable_hierarchical_cache")
        or get("enable_lmcache")
        or get("enable_flexkv")
        or get("enable_unified_cache_external_linker")
    )
    if m.prefix_cache_ttl_seconds is None or not plain_tree:
        out.discard("prefix_cache_ttl")
    if int(get("tokenizer_worker_num") or 1) > 1:
        # SGLang installs its auth middleware only with a single tokenizer worker, and the tenant
        # boundary is added to that worker's app alone.
        out -= {
            "close_privileged_endpoints",
            "disable:runtime_updates",
            "tenant_cache_salt",
            "allowlist_logs",
        }
    storage = get("hicache_storage_backend")
    if (
        m.encrypt_offload
        and storage == "dynamic"
        and PCCGUARD_STORAGE_CLASS in str(get("hicache_storage_backend_extra_config") or "")
    ):
        out.add("encrypt_offload")
    return out


def always_installed(config: PluginConfig, facts: DeploymentFacts) -> set[str]:
    """Installed whatever the rules ask: the scrubber, and server salts whenever the prefix cache is on."""
    always = {"scrub_freed_kv"} if config.mitigations.scrub_freed_kv else set()
    if config.mitigations.tenant_cache_salt and facts.optimizations.prefix_caching.enabled:
        always.add("tenant_cache_salt")
    return always


def decide(server_args: Any, *, scheduler: bool = False) -> Enforcement | None:
    """Decide once per process; raise ``EnforcementError`` to refuse the start.

    ``scheduler`` marks a scheduler process: it must receive the salt key set
    with the server arguments and never makes one of its own.
    """
    with STATE.lock:
        if STATE.current is not None:
            return STATE.current
        try:
            return _decide_locked(server_args, scheduler)
        except EnforcementError:
            raise
        except Exception as exc:  # an error outside the policy (config, facts, keys): fail closed
            refuse(ENGINE, STATE.audit, exc)


def _decide_locked(server_args: Any, scheduler: bool) -> Enforcement | None:
    """The decision of this process: at most two evaluations of the rulebook (``decide_startup``)."""
    from sglang.srt.arg_groups.overrides import resolution_result

    config = load_plugin_config(dict(os.environ))
    if not config.enabled:
        logger.warning("pccguard plugin disabled by its configuration: no mitigations installed")
        return None
    facts = runtime_facts(server_args, config)
    can = installable(server_args, config, facts)
    always = always_installed(config, facts)
    missing = always - can
    if missing:
        raise EnforcementError(f"required mitigations cannot be installed: {', '.join(sorted(missing))}")
    TenantResolver(config.tenancy)  # a malformed API key file refuses the start, in every process
    radix_cache = not bool(resolution_result(server_args, "disable_radix_cache"))
    decision = evaluate_startup(ENGINE, facts, can, config, STATE.audit, always=always)
    if decision is None:  # fail_mode: open and the check itself failed: the engine runs unchecked
        return None
    # The profile the decision was made under, carried by it: never loaded a second time.
    admin_routes = "require_admin_key" if decision.params.allow_authenticated_admin_endpoints else "refuse"
    gate = _salt_gate(server_args, config, scheduler) if "tenant_cache_salt" in decision.install else None
    enforcement = Enforcement(
        config=config,
        installed=frozenset(decision.install),
        admin_routes=admin_routes,
        gate=gate,
        radix_cache=radix_cache,
    )
    STATE.current = enforcement
    logs.apply_if_installed(enforcement.installed, config.mitigations)
    for mitigation in decision.install:
        STATE.audit.emit(AuditKind.MITIGATION_INSTALLED, mitigation=mitigation)
    return enforcement


def _salt_gate(server_args: Any, config: PluginConfig, scheduler: bool) -> SaltGate:
    """The salt gate of this process, with the one key set of this start.

    The launcher (or in-process ``Engine``) resolves the server arguments first
    and attaches the process's key set to them; scheduler processes receive the
    arguments pickled and adopt that set, so they open the tokens the ingress mints.
    """
    keys = getattr(server_args, KEYS_ATTR, None)
    if keys is None and scheduler:
        raise EnforcementError(
            "tenant_cache_salt is installed but no salt keys came with the server arguments to this scheduler"
        )
    if keys is None:
        keys = process_keys()
        setattr(server_args, KEYS_ATTR, keys)  # an underscore attribute: ServerArgs allows bookkeeping
    tenancy = config.tenancy
    return SaltGate(
        keys=adopt_process_keys(keys), mode=tenancy.mode, max_age=tenancy.salt_token_max_age_seconds
    )


def check_pools(scheduler: Any) -> None:
    """Refuse allocator, pool or tree kinds that the installed hooks do not cover."""
    enforcement = STATE.current
    if enforcement is None:
        return
    allocator = scheduler.token_to_kv_pool_allocator
    if enforcement.active("scrub_freed_kv"):
        kind = type(allocator)
        if kind.__name__ not in scrub.SUPPORTED_ALLOCATORS or not kind.__module__.startswith(
            "sglang.srt.mem_cache.allocator."
        ):
            raise EnforcementError(f"pccguard: freed KV of allocator {kind.__name__} cannot be scrubbed")
        if not scrub.supports_pool(allocator.get_kvcache()):
            raise EnforcementError(
                f"pccguard: KV pool {type(allocator.get_kvcache()).__name__} has no K/V buffers to scrub"
            )
    if enforcement.active("prefix_cache_ttl") and not ttl.supports_tree(scheduler.tree_cache):
        raise EnforcementError(
            f"pccguard: prefix TTL cannot be enforced on {type(scheduler.tree_cache).__name__}"
        )
