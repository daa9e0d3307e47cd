"""``close_privileged_endpoints`` and ``disable:runtime_updates`` on SGLang's HTTP server.

All 42 privileged routes of 0.5.23 are ``ADMIN_OPTIONAL``: open when no key is
set. SGLang's own auth decision (``utils.auth.decide_request_auth``) is wrapped
so that these routes require the admin key — compared in constant time by
SGLang's bearer check — and are refused (403) when no admin key is configured,
or always when the profile allows no admin endpoints at all; so are the operator
routes of the tenant table that SGLang leaves at the normal level, and the
admin-level routes of included routers, which SGLang's own lookup misses (both
found by the start-time self-test, :mod:`.selftest_http`). Weight and LoRA
update routes are always refused under ``disable:runtime_updates``. SGLang adds
its auth middleware only when a key is configured; the plugin makes it always
present. ``/configure_logging`` additionally cannot turn on request logging,
request dumps or crash dumps, whoever calls it.
"""

from __future__ import annotations

from typing import Any

from pccguard.enforcement.audit import AuditKind
from pccguard.enforcement.tenancy.routes import leaf_routes

from ..routes import DUMPER_PREFIX, ROUTE_TABLE, WEIGHT_ROUTES
from . import targets
from .state import STATE

MITIGATION = "close_privileged_endpoints"
RUNTIME_UPDATES = "disable:runtime_updates"
#: Operator routes of the tenant table, closed like the admin-level ones: SGLang gives two of them
#: (``/get_hicache_l3_cache_layout``, ``/scale_elastic_ep``) the normal auth level.
OPERATOR_PATHS = frozenset(s.path for s in ROUTE_TABLE.specs if s.binding == "admin")


_ADMIN_LEVEL_PATHS: frozenset[str] | None = None


def _is_weight_route(path: str) -> bool:
    return path in WEIGHT_ROUTES


def admin_level_paths() -> frozenset[str]:
    """Paths SGLang marks admin-level on its HTTP app, included routers too (read once).

    SGLang's own lookup reads only the app's top-level routes, so a route of an
    included router (``/is_scaling_elastic_ep``) gets the normal level there.
    """
    global _ADMIN_LEVEL_PATHS
    if _ADMIN_LEVEL_PATHS is None:
        from sglang.srt.entrypoints import http_server
        from sglang.srt.utils.auth import AuthLevel

        admin = (AuthLevel.ADMIN_OPTIONAL, AuthLevel.ADMIN_FORCE)
        _ADMIN_LEVEL_PATHS = frozenset(
            str(route.path)
            for route in leaf_routes(http_server.app)
            if getattr(getattr(route, "endpoint", None), "_auth_level", None) in admin
        )
    return _ADMIN_LEVEL_PATHS


def _around_decide(original: Any, *args: Any, **kwargs: Any) -> Any:
    from sglang.srt.utils.auth import AuthDecision, AuthLevel

    current = STATE.current
    path = str(kwargs.get("path", ""))
    level = kwargs.get("auth_level")
    if current is None:
        return original(*args, **kwargs)
    if current.active(RUNTIME_UPDATES) and _is_weight_route(path):
        STATE.count(AuditKind.ENDPOINT_REFUSED, RUNTIME_UPDATES, 1, "requests", reason="weight_route")
        return AuthDecision(allowed=False, error_status_code=403)
    privileged = (
        level in (AuthLevel.ADMIN_OPTIONAL, AuthLevel.ADMIN_FORCE)
        or path.startswith(DUMPER_PREFIX)
        or path in OPERATOR_PATHS
        or (current.active(MITIGATION) and path in admin_level_paths())
    )
    if not current.active(MITIGATION) or not privileged:
        return original(*args, **kwargs)
    admin_key = kwargs.get("admin_api_key")
    if current.admin_routes == "refuse" or not admin_key:
        STATE.count(AuditKind.ENDPOINT_REFUSED, MITIGATION, 1, "requests", reason="admin_route_closed")
        return AuthDecision(allowed=False, error_status_code=403)
    forced = dict(kwargs, auth_level=AuthLevel.ADMIN_FORCE)
    decision = original(*args, **forced)
    if not decision.allowed:
        STATE.count(AuditKind.ENDPOINT_REFUSED, MITIGATION, 1, "requests", reason="admin_key_missing")
    return decision


def _around_has_force(original: Any, *args: Any, **kwargs: Any) -> Any:
    # True makes SGLang install its auth middleware even when no key is configured.
    if STATE.active(MITIGATION) or STATE.active(RUNTIME_UPDATES):
        return True
    return original(*args, **kwargs)


def content_logging_requested(obj: Any) -> list[str]:
    """The fields of a ConfigureLoggingReq that would let request content leave the process."""
    asked = []
    if getattr(obj, "log_requests", None):
        asked.append("log_requests")
    if getattr(obj, "dump_requests_folder", None):
        asked.append("dump_requests_folder")
    if getattr(obj, "crash_dump_folder", None):
        asked.append("crash_dump_folder")
    level = getattr(obj, "log_level", None)
    if isinstance(level, str) and level.strip().lower() == "debug":
        asked.append("log_level")
    return asked


def _before_configure_logging(manager: Any, obj: Any, *args: Any, **kwargs: Any) -> None:
    if not STATE.active(MITIGATION):
        return None
    asked = content_logging_requested(obj)
    if asked:
        from fastapi import HTTPException

        STATE.count(AuditKind.OPTION_REFUSED, MITIGATION, len(asked), "options", reason="content_logging")
        STATE.flush()
        raise HTTPException(status_code=403, detail="refused by pccguard: content logging and dumps stay off")
    return None


HOOKS = [
    (targets.AUTH_DECIDE, _around_decide, "AROUND"),
    (targets.AUTH_HAS_FORCE, _around_has_force, "AROUND"),
    (targets.TOKENIZER_CONFIGURE_LOGGING, _before_configure_logging, "BEFORE"),
]
