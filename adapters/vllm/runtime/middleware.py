"""The tenant boundary in front of ``vllm serve`` (added through vLLM's ``--middleware``).

vLLM builds its ASGI middleware stack when the server starts (its lifespan),
and the boundary then enumerates the live app's routes and binds each one by
:data:`~pccguard.adapters.vllm.routes.ROUTE_TABLE` (see
:mod:`pccguard.enforcement.tenancy.boundary`). On a prompt route the body's ``cache_salt``
becomes a token minted for the identified tenant, so vLLM carries it untouched
into the ``EngineCoreRequest``; the engine core opens it (``hooks``) and
refuses any request without one, whatever route it came from.

It also serves ``close_privileged_endpoints`` (operator routes answer 403,
:func:`admin_policy`) and ``disable:cache_hit_metrics``: ``GET /metrics`` passes through
:func:`~pccguard.adapters.vllm.runtime.metrics_filter.drop_series`; and it proves
``allowlist_logs`` where the plan applied it in this process (:mod:`.logs`). It serves
pccguard's metrics route with the counters of this process and of every engine core
(:func:`read_counters`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pccguard.adapters.vllm.routes import RESPONSE_STORE_PATHS, ROUTE_TABLE
from pccguard.adapters.vllm.runtime import logs
from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.adapters.vllm.runtime.metrics_filter import HIT_ORACLE_FAMILIES, drop_series
from pccguard.adapters.vllm.runtime.plan import DROP_HIT_METRICS
from pccguard.adapters.vllm.runtime.targets import ENGINE_CORE_COUNTERS
from pccguard.enforcement import log_allowlist
from pccguard.enforcement.config import PluginConfig, load_plugin_config
from pccguard.enforcement.selftest import AsyncCheck, on_loop
from pccguard.enforcement.tenancy.boundary import AUDIT_RECORDS, ASGIApp, BoundaryPolicy, TenantBoundary
from pccguard.enforcement.tenancy.identity import TenantResolver
from pccguard.enforcement.tenancy.routes import BoundRoutes
from pccguard.enforcement.tenancy.salts import SaltKeys, process_keys
from pccguard.enforcement.tenancy.startup_checks import filtered, privileged_routes_closed

#: The engine-core utility that answers its counters (added by ``hooks``).
COUNTERS_UTILITY = ENGINE_CORE_COUNTERS.rpartition(".")[2]


def _record(outcome: str, tenant: str | None) -> None:
    found = AUDIT_RECORDS.get(outcome)
    if found is not None:
        kind, mitigation, reason = found
        audit_log().emit(kind, mitigation=mitigation, unit="requests", reason=reason, tenant=tenant)


def vllm_policy(settings: PluginConfig) -> BoundaryPolicy:
    """The boundary as the vLLM adapter configures it for ``settings``."""

    def keys() -> SaltKeys | None:
        return process_keys()

    filters = {"/metrics": drop_series} if settings.mitigations.drop_cache_hit_metrics else {}
    store = RESPONSE_STORE_PATHS if _response_store_on() else frozenset()
    admin = admin_policy(settings)

    def selftests(app: Any, routes: BoundRoutes) -> dict[str, AsyncCheck]:
        """What this boundary enforces, proven on the live app before ``vllm serve`` takes a request."""
        checks: dict[str, AsyncCheck] = {}
        if admin == "refuse":
            checks["close_privileged_endpoints"] = privileged_routes_closed(app, routes)
        if filters and any(path == "/metrics" for (path, _), _b in routes):
            checks[DROP_HIT_METRICS] = filtered(app, "/metrics", HIT_ORACLE_FAMILIES, raw=_registry_text)
        if log_allowlist.active() is not None:  # the plan installed it in this process (``logs``)
            checks[log_allowlist.MITIGATION] = on_loop(logs.canary_check())
        return checks

    return BoundaryPolicy(
        engine="vllm",
        table=ROUTE_TABLE,
        resolver=TenantResolver(settings.tenancy),
        salt_in_body=True,
        keys=keys,
        record=_record,
        admin=admin,
        filters=filters,
        refused_paths=store,
        selftests=selftests,
        audit=audit_log(),
        counters=read_counters,
    )


async def read_counters(app: Any) -> list[Mapping[str, int]]:
    """This API server's audit counters and every engine core's (its ``pccguard_counters`` utility)."""
    client = app.state.engine_client.engine_core
    cores = await client.call_utility_all_async(COUNTERS_UTILITY)
    return [audit_log().counters(), *cores]


def _registry_text() -> str:
    """The unfiltered exposition of this process's metrics: what the filter has to remove."""
    from prometheus_client import REGISTRY, generate_latest

    text: str = generate_latest(REGISTRY).decode("utf-8", "replace")
    return text


def admin_policy(settings: PluginConfig) -> Literal["refuse", "engine"]:
    """Operator routes (dev mode, elastic scaling, aborts by id) are refused unless nothing asks to close them.

    vLLM has no admin key to require, so closing means refusing (403): always
    when tenants share the server, and under ``close_privileged_endpoints``
    (on by default) in a single-tenant one too.
    """
    closed = settings.tenancy.mode == "multi" or settings.mitigations.close_privileged_endpoints
    return "refuse" if closed else "engine"


def _response_store_on() -> bool:
    import os

    return os.environ.get("VLLM_ENABLE_RESPONSES_API_STORE", "").strip().lower() in ("1", "true", "yes")


class PccguardTenantMiddleware(TenantBoundary):
    """ASGI middleware; vLLM adds it with ``app.add_middleware`` (no arguments: it reads ``PCCGUARD_CONFIG``)."""

    def __init__(self, app: ASGIApp, settings: PluginConfig | None = None) -> None:
        super().__init__(app, vllm_policy(settings or load_plugin_config()))


MIDDLEWARE_QUALNAME = f"{__name__}.PccguardTenantMiddleware"
