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
  admin key; one that answers anything else is open. The probes run with the
  app's endpoints held, so an open route is reported and never run;
* a filtered route's body must not contain the series it exists to drop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pccguard.enforcement.asgi_probe import (
    NO_ANSWER,
    REFUSED_STATUSES,
    Answer,
    Headers,
    endpoints_held,
    request,
)
from pccguard.enforcement.selftest import AsyncCheck, Evidence, SelfTestFailed
from pccguard.enforcement.tenancy.routes import Binding, BoundRoutes

_PARAM = re.compile(r"\{[^}]+\}")

Route = tuple[str, str]


def concrete(template: str) -> str:
    """A path the route template matches (every parameter filled in)."""
    return _PARAM.sub("pccguard-selftest", template)


def operator_routes(routes: BoundRoutes) -> list[Route]:
    """``(method, template)`` of every route the boundary binds as operator-only or refused, one method each."""
    found: dict[str, str] = {}
    for (path, method), binding in routes:
        if binding in (Binding.ADMIN, Binding.REFUSED) and method not in ("WEBSOCKET", "HEAD"):
            verb = "POST" if method in ("*", "ANY") else method
            found.setdefault(path, verb)
    return [(method, path) for path, method in found.items()]


async def answers(app: Any, routes: Sequence[Route], headers: Headers = ()) -> list[tuple[str, str, Answer]]:
    """What ``app`` answers each route, with its endpoints held (:func:`~pccguard.enforcement.asgi_probe.endpoints_held`).

    A route no middleware refuses is answered at the router and its endpoint never runs.
    """
    sent = [(b"content-type", b"application/json"), *headers]
    out: list[tuple[str, str, Answer]] = []
    with endpoints_held(app):
        for method, path in routes:
            try:
                answer = await request(app, method, concrete(path), headers=sent, body=b"{}")
            except TimeoutError:
                answer = Answer(NO_ANSWER, b"")
            out.append((method, path, answer))
    return out


def routes_refused(
    app: Any,
    routes: Sequence[Route],
    *,
    what: str = "operator routes",
    credential: str = "without the admin key",
    headers: Headers = (),
    refused: frozenset[int] = REFUSED_STATUSES,
) -> AsyncCheck:
    """Every route in ``routes`` refuses (``refused``) a caller presenting ``headers``; a failure lists them all."""

    async def check() -> Evidence:
        if not routes:
            raise SelfTestFailed(f"the live app lists no {what} to test")
        got = await answers(app, routes, headers)
        opened = [f"{m} {p} {a.said()}" for m, p, a in got if a.status not in refused]
        if opened:
            raise SelfTestFailed(
                f"{len(opened)} of {len(routes)} {what} did not refuse a caller {credential}: "
                + ", ".join(opened[:5])
                + (", ..." if len(opened) > 5 else "")
            )
        statuses = "/".join(str(s) for s in sorted(refused))
        return Evidence(
            checked=f"all {len(routes)} {what} enumerated from the live app answered {statuses} {credential}",
        )

    return check


def privileged_routes_closed(app: Any, routes: BoundRoutes) -> AsyncCheck:
    """Every operator route of the live app refuses a caller without the admin key."""
    return routes_refused(app, operator_routes(routes))


def filtered(app: Any, path: str, dropped: Iterable[str], raw: Any = None) -> AsyncCheck:
    """``GET path`` through the live app carries none of ``dropped`` (``raw()``, if given, shows what there was)."""
    names = tuple(dropped)

    async def check() -> Evidence:
        status, body = await request(app, "GET", path)
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
