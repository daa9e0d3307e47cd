"""Self-tests of what the tenant boundary enforces, run on the live ASGI app before it serves.

The boundary holds the HTTP-side mitigations of both engines: operator routes
closed (``close_privileged_endpoints``, and SGLang's ``disable:runtime_updates``)
and response filters (vLLM's ``disable:cache_hit_metrics``). Their checks send
real requests through the whole application -- every middleware, the boundary,
the engine's own routes -- in process, as the server would deliver them, while
the app's lifespan start-up is still running, so no client can reach the
server before they pass:

* every operator route the live app serves (enumerated from the app itself,
  bound by the engine's route table) must answer 401, 403 or 404 without the
  admin key; one that answers anything else is open;
* a filtered route's body must not contain the series it exists to drop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pccguard.enforcement.selftest import AsyncCheck, Evidence, SelfTestFailed
from pccguard.enforcement.tenancy.routes import Binding, BoundRoutes

#: What an operator route may answer a caller without the admin key.
CLOSED_STATUSES = frozenset({401, 403, 404})
_PARAM = re.compile(r"\{[^}]+\}")


async def asgi_request(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP request through ``app`` in process, from loopback, without credentials."""
    sent: list[dict[str, Any]] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"pccguard-selftest"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 0),
        "server": ("pccguard-selftest", 80),
        "state": {},
        "app": app,
    }
    try:
        await app(scope, receive, send)
    except Exception:
        # An app that answered and then raised (Starlette re-raises after its 500) still answered.
        if not any(m.get("type") == "http.response.start" for m in sent):
            raise
    start = next((m for m in sent if m.get("type") == "http.response.start"), None)
    if start is None:
        raise SelfTestFailed(f"{method} {path} sent no response")
    body_out = b"".join(bytes(m.get("body", b"")) for m in sent if m.get("type") == "http.response.body")
    return int(start["status"]), body_out


def _concrete(template: str) -> str:
    return _PARAM.sub("pccguard-selftest", template)


def privileged_routes_closed(app: Any, routes: BoundRoutes) -> AsyncCheck:
    """Every operator route of the live app refuses a caller without the admin key."""

    async def check() -> Evidence:
        operator = [
            (path, method)
            for (path, method), binding in routes
            if binding in (Binding.ADMIN, Binding.REFUSED) and method not in ("WEBSOCKET", "HEAD")
        ]
        for path, method in operator:
            verb = "POST" if method in ("*", "ANY") else method
            status, _ = await asgi_request(app, verb, _concrete(path), b"{}")
            if status not in CLOSED_STATUSES:
                raise SelfTestFailed(f"operator route {verb} {path} answered {status} without the admin key")
        return Evidence(
            checked=(
                f"{len(operator)} operator routes enumerated from the live app each answered 401, 403 or 404 "
                "without the admin key"
            ),
        )

    return check


def filtered(app: Any, path: str, dropped: Iterable[str], raw: Any = None) -> AsyncCheck:
    """``GET path`` through the live app carries none of ``dropped`` (``raw()``, if given, shows what there was)."""
    names = tuple(dropped)

    async def check() -> Evidence:
        status, body = await asgi_request(app, "GET", path)
        if status != 200:
            raise SelfTestFailed(f"GET {path} answered {status}")
        text = body.decode("utf-8", "replace")
        leaked = [name for name in names if re.search(rf"(?m)^(# (HELP|TYPE) )?{re.escape(name)}", text)]
        if leaked:
            raise SelfTestFailed(f"GET {path} still serves {len(leaked)} filtered series, e.g. {leaked[0]}")
        present = 0
        if raw is not None:
            unfiltered = str(raw())
            present = sum(1 for name in names if name in unfiltered)
        return Evidence(
            checked=(
                f"GET {path} through the live app served none of the {len(names)} filtered series "
                f"({present} of them were registered)"
            ),
        )

    return check
