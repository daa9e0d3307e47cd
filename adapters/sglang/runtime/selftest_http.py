"""SGLang's start-time self-tests in the HTTP server: the privileged routes proven closed on the live app.

They are the tenant boundary's self-tests (``BoundaryPolicy.selftests``), run
by the shared boundary when uvicorn asks SGLang's app to start (its ASGI
lifespan), before SGLang's own start-up and before uvicorn binds its socket,
so no client can connect before they pass -- on SGLang's module-level FastAPI
app with every middleware in place (SGLang's admin-key check, pccguard's
boundary). A failure answers ``lifespan.startup.failed``; uvicorn exits, and
``launch_server`` raises the one-line refusal.

* ``close_privileged_endpoints`` -- every privileged route of the live app
  (SGLang's admin auth level, :data:`~pccguard.adapters.sglang.routes.PRIVILEGED_ROUTES`,
  the tensor dumper, the operator routes of the tenant table) is called
  in-process without any key and must answer 401, 403 or 404; and the hook on
  ``TokenizerManager.configure_logging`` must refuse to turn request logging on;
* ``allowlist_logs`` -- a canary through the live tokenizer manager's request
  logger, and canary records put into its targets, reach no handler
  (:func:`pccguard.enforcement.log_allowlist.log_canary_check`);
* ``disable:runtime_updates`` -- every weight and adapter route is called with
  the admin key (when one is configured) and must be refused (403) by the
  runtime-update rule.

The probes run with the app's endpoints held (:func:`~pccguard.enforcement.asgi_probe.endpoints_held`),
so a route that fails to refuse is reported and its endpoint never runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pccguard.enforcement.selftest import AsyncCheck, Evidence, SelfTestFailed, SelfTestOutcome, on_loop
from pccguard.enforcement.tenancy.routes import BoundRoutes, leaf_routes
from pccguard.enforcement.tenancy.startup_checks import Route, operator_routes, routes_refused
from pccguard.errors import EnforcementError

from ..routes import DUMPER_PREFIX, PRIVILEGED_ROUTES, WEIGHT_ROUTES
from . import logs, targets
from .hooks import registered
from .selftest import HTTP_MITIGATIONS, INIT_INFO_KEY, engine_start_seconds
from .state import STATE

logger = logging.getLogger("pccguard.sglang")

#: The method a probe uses, of those a route serves.
METHOD_ORDER = ("POST", "PUT", "DELETE", "PATCH", "GET")
#: The runtime-update refusal's audit counter.
RUNTIME_UPDATES_COUNTER = "endpoint_refused/disable:runtime_updates"


def http_checks(
    app: Any, routes: BoundRoutes | None, admin_key: str | None, installed: frozenset[str] = HTTP_MITIGATIONS
) -> dict[str, AsyncCheck]:
    """The checks of the HTTP server's ``installed`` mitigations on ``app`` (with or without pccguard)."""
    checks = {
        "close_privileged_endpoints": privileged_routes_closed(app, routes),
        "disable:runtime_updates": runtime_updates_refused(app, admin_key),
        "allowlist_logs": on_loop(logs.canary_check()),
    }
    return {name: check for name, check in checks.items() if name in installed}


# ---------------------------------------------------------------------- the live routes


def _privileged(path: str, endpoint: Any) -> bool:
    from sglang.srt.utils.auth import AuthLevel

    if getattr(endpoint, "_auth_level", None) in (AuthLevel.ADMIN_OPTIONAL, AuthLevel.ADMIN_FORCE):
        return True
    return path in PRIVILEGED_ROUTES or path in WEIGHT_ROUTES or path.startswith(DUMPER_PREFIX)


def privileged_routes(app: Any, routes: BoundRoutes | None) -> list[Route]:
    """``(method, path)`` of every privileged route the live app serves: SGLang's and the tenant table's."""
    found: dict[str, str] = {}
    for route in leaf_routes(app):
        path, methods = getattr(route, "path", None), frozenset(getattr(route, "methods", None) or ())
        if isinstance(path, str) and methods and _privileged(path, getattr(route, "endpoint", None)):
            found[path] = next(m for m in (*METHOD_ORDER, *sorted(methods)) if m in methods)
    for method, path in operator_routes(routes) if routes is not None else []:
        found.setdefault(path, method)
    return [(method, path) for path, method in found.items()]


# ---------------------------------------------------------------------- the checks


def privileged_routes_closed(app: Any, routes: BoundRoutes | None) -> AsyncCheck:
    closed = routes_refused(app, privileged_routes(app, routes), what="privileged routes")

    async def check() -> Evidence:
        evidence = await closed()
        _require_content_logging_refused()
        return Evidence(
            checked=f"{evidence.checked}; the configure_logging hook refused to turn request logging on"
        )

    return check


def _require_content_logging_refused() -> None:
    from fastapi import HTTPException
    from sglang.srt.managers.io_struct import ConfigureLoggingReq

    asked = ConfigureLoggingReq(log_requests=True, log_requests_level=3)
    for hook in registered(targets.TOKENIZER_CONFIGURE_LOGGING):
        try:
            hook(None, asked)
        except HTTPException as exc:
            if exc.status_code == 403:
                return
            raise
    raise SelfTestFailed("/configure_logging could turn on request logging: no hook refused it")


def runtime_updates_refused(app: Any, admin_key: str | None) -> AsyncCheck:
    """Every weight and adapter route is refused (403) by the runtime-update rule, even with the admin key."""
    headers = [(b"authorization", b"Bearer " + admin_key.encode("latin-1"))] if admin_key else []
    credential = "with the admin key" if admin_key else "without the admin key"

    async def check() -> Evidence:
        weight = [(m, p) for m, p in privileged_routes(app, None) if p in WEIGHT_ROUTES]
        before = STATE.counters().get(RUNTIME_UPDATES_COUNTER, 0)
        refused = routes_refused(
            app,
            weight,
            what="weight-update routes",
            credential=credential,
            headers=headers,
            refused=frozenset({403}),
        )
        evidence = await refused()
        counted = STATE.counters().get(RUNTIME_UPDATES_COUNTER, 0) - before
        if counted < len(weight):
            raise SelfTestFailed(
                f"only {counted} of {len(weight)} weight-update routes were refused by the runtime-update rule"
            )
        return Evidence(checked=f"{evidence.checked}, each by the runtime-update rule")

    return check


# ---------------------------------------------------------------------- start-up wiring


def boundary_checks(
    installed: frozenset[str], admin_key: str | None
) -> Callable[[Any, BoundRoutes], Mapping[str, AsyncCheck]]:
    """``BoundaryPolicy.selftests`` for this start: the checks of the HTTP mitigations it installed."""

    def selftests(app: Any, routes: BoundRoutes) -> Mapping[str, AsyncCheck]:
        return http_checks(app, routes, admin_key, HTTP_MITIGATIONS & installed)

    return selftests


def proven(outcome: SelfTestOutcome | None, refusal: str | None) -> None:
    """``BoundaryPolicy.on_selftests``: keep what the boundary proved, or the refusal ``launch_server`` raises."""
    if outcome is not None:
        STATE.selftests = outcome
        STATE.engine_start_seconds = engine_start_seconds()
    if refusal is not None:
        STATE.refusal = EnforcementError(refusal)


def _scheduler_reports(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    infos = kwargs.get("scheduler_infos", args[3] if len(args) > 3 else None) or []
    return [info[INIT_INFO_KEY] for info in infos if isinstance(info, dict) and INIT_INFO_KEY in info]


def _around_http_setup(original: Any, server_args: Any, *args: Any, **kwargs: Any) -> Any:
    STATE.scheduler_selftests = _scheduler_reports(args, kwargs)
    try:
        result = original(server_args, *args, **kwargs)
    except SystemExit:  # uvicorn exits (3) when its start-up failed: say why, as every refusal does
        if STATE.refusal is not None:
            raise STATE.refusal from None
        raise
    if STATE.refusal is not None:
        raise STATE.refusal
    return result


HOOKS = [(targets.HTTP_SETUP, _around_http_setup, "AROUND")]
