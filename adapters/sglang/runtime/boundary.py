"""The shared tenant boundary on SGLang's HTTP app (see ``pccguard.enforcement.tenancy.boundary``).

``_setup_and_run_http_server`` runs in the HTTP server's process before uvicorn
starts; the hook adds the boundary to SGLang's module-level FastAPI app there,
so it is in place (and has bound every route, at the ASGI lifespan) before the
first request. SGLang's routes reach the engine through
``TokenizerManager.generate_request``, where ``salt`` applies the tenant's
salt, so the boundary writes none into bodies. Operator routes are left to
SGLang's admin-key check, which ``endpoints`` hardens; the boundary proves them
closed before the server listens (``selftest_http``).
"""

from __future__ import annotations

from typing import Any

from pccguard.enforcement.tenancy.boundary import AUDIT_RECORDS, ASGIApp, BoundaryPolicy, TenantBoundary
from pccguard.enforcement.tenancy.identity import TenantResolver

from ..routes import EMBEDDING_PATHS, ROUTE_TABLE
from . import targets
from .state import STATE, Enforcement


def _record(outcome: str, tenant: str | None) -> None:
    found = AUDIT_RECORDS.get(outcome)
    if found is not None:
        kind, mitigation, reason = found
        STATE.count(kind, mitigation, 1, "requests", reason=reason or "-")


def sglang_policy(
    enforcement: Enforcement, *, radix_cache: bool, admin_key: str | None = None
) -> BoundaryPolicy:
    """The boundary as the SGLang adapter configures it; its self-tests are the HTTP server's (``selftest_http``)."""
    from . import metrics, selftest_http

    return BoundaryPolicy(
        engine="sglang",
        table=ROUTE_TABLE,
        resolver=TenantResolver(enforcement.config.tenancy),
        salt_in_body=False,
        keys=lambda: enforcement.gate.keys if enforcement.gate is not None else None,
        record=_record,
        admin="engine",
        refused_paths=EMBEDDING_PATHS if radix_cache else frozenset(),
        warmup_open=lambda: STATE.warmup_open,
        selftests=selftest_http.boundary_checks(enforcement.installed, admin_key),
        audit=STATE.audit,
        on_selftests=selftest_http.proven,
        counters=metrics.read_counters,
    )


class SglangTenantBoundary(TenantBoundary):
    """Added with ``app.add_middleware(SglangTenantBoundary, policy=...)``."""

    def __init__(self, app: ASGIApp, policy: BoundaryPolicy) -> None:
        super().__init__(app, policy)


def _before_http_setup(server_args: Any, *args: Any, **kwargs: Any) -> None:
    enforcement = STATE.current
    if enforcement is None:
        return None
    from sglang.srt.entrypoints import http_server

    admin_key = getattr(server_args, "admin_api_key", None) or None
    policy = sglang_policy(enforcement, radix_cache=enforcement.radix_cache, admin_key=admin_key)
    http_server.app.add_middleware(SglangTenantBoundary, policy=policy)
    return None


HOOKS = [(targets.HTTP_SETUP, _before_http_setup, "BEFORE")]
