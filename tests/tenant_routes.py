"""The tenant-bound-routes scenario both engines' acceptance tests run against a live server.

Engine-free (plain ``urllib`` and the route tables), so the vLLM and the SGLang
tests share one definition of what they measure:

* :func:`prompt_routes` -- the live app's routes that carry a prompt (bound as
  prompt routes, or absent from pccguard's table);
* :class:`Measured` -- a route that reports cached prompt tokens, and how;
* :func:`route_pairs` -- tenant A on one route, then tenant B and tenant A on
  another, for every ordered pair: the cached tokens of each.

Every pair gets a prompt of its own: a fresh nonce opens its first block, so no
case hits a block an earlier case left in one tenant's own cache.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pccguard.enforcement.tenancy.routes import Binding, RouteTable

TENANT_HEADER = "x-pccguard-tenant"
CHOSEN_SALT = "everyone-uses-this-salt"
BASE_TEXT = "The careful auditor checks every cache line before the quick brown fox jumps. " * 3
TIMEOUT_S = 60


def post(base: str, path: str, body: dict[str, Any], tenant: str | None) -> tuple[int, Any]:
    """(status, JSON answer) of one POST; an HTTP error's body is read as the answer."""
    headers = {"Content-Type": "application/json"}
    if tenant is not None:
        headers[TENANT_HEADER] = tenant
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"null")
        except ValueError:
            return err.code, raw.decode("utf-8", "replace")


def refused_by_the_boundary(status: int, answer: Any) -> bool:
    """Whether an answer is the tenant boundary's refusal (401 no tenant, 403 route not served to tenants)."""
    return (
        status in (401, 403)
        and isinstance(answer, dict)
        and answer.get("error", {}).get("type") == "pccguard_tenant_boundary"
    )


def prompt_routes(live: Iterable[tuple[str, str]], table: RouteTable) -> list[str]:
    """Live POST routes bound as prompt routes, or not in the table at all (a route added after start)."""
    out = []
    for path, method in live:
        known = table.lookup(path, method)
        if method == "POST" and (known is None or known.binding == Binding.PROMPT):
            out.append(path)
    return out


def case_text(label: str) -> str:
    """A prompt no other case shares a first block with; ``label`` only names the case."""
    return f"{secrets.token_hex(16)} {label}. {BASE_TEXT}"


@dataclass(frozen=True)
class Measured:
    """A route that reports cached prompt tokens: its body from (text, token ids), and the count."""

    path: str
    body: Callable[[str, list[int]], dict[str, Any]]
    cached: Callable[[Any], int]


def completion_cached(answer: Any) -> int:
    return int(answer["usage"]["prompt_tokens_details"]["cached_tokens"])


def anthropic_cached(answer: Any) -> int:
    """Anthropic's usage leaves ``cache_read_input_tokens`` out (SGLang) or null when nothing was cached."""
    usage = answer["usage"]
    assert "input_tokens" in usage, usage
    return int(usage.get("cache_read_input_tokens") or 0)


Sender = Callable[[Measured, str, list[int], str | None, str | None], tuple[int, int | None]]


def sender(base: str) -> Sender:
    """``send(route, text, ids, tenant, salt) -> (status, cached tokens or None)`` against ``base``."""

    def send(
        route: Measured, text: str, ids: list[int], tenant: str | None, salt: str | None
    ) -> tuple[int, int | None]:
        body = route.body(text, ids)
        if salt is not None:
            body["cache_salt"] = salt
        status, answer = post(base, route.path, body, tenant)
        return status, (route.cached(answer) if status == 200 else None)

    return send


def route_pairs(
    send: Sender,
    routes: list[Measured],
    case: Callable[[str], tuple[str, list[int]]],
    first: str | None,
    second: str | None,
    salt: str | None = None,
) -> dict[str, tuple[int, int]]:
    """For every ordered pair: ``first`` on one route, then ``second`` and ``first`` on the other.

    Returns ``{"A -> B": (cached for second, cached for first repeating)}``;
    a request that is not served fails the scenario at once. A named
    ``second`` tenant is a fresh one per pair (``mallory-3``), so any token it
    finds cached came from ``first``, not from its own earlier cases.
    """
    out: dict[str, tuple[int, int]] = {}
    for n, (a, b) in enumerate((a, b) for a in routes for b in routes):
        pair = f"{a.path} -> {b.path}"
        text, ids = case(pair)
        other = None if second is None else f"{second}-{n}"
        counts = []
        for route, tenant in ((a, first), (b, other), (b, first)):
            status, cached = send(route, text, ids, tenant, salt)
            assert status == 200 and cached is not None, f"{pair}: {route.path} answered {status}"
            counts.append(cached)
        out[pair] = (counts[1], counts[2])
    return out
