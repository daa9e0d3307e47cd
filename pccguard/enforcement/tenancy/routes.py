"""Which routes an engine serves, and what binding each one gets at the tenant boundary.

An adapter declares its engine version's routes once, in a :class:`RouteTable`
(path template, methods, binding). At start the boundary enumerates the live
application's routes -- whatever the engine version, its plugins and its flags
actually registered -- and gives each one the binding its table names. A live
route the table does not list gets the generic prompt policy (:data:`UNLISTED`):
tenant required, client salts stripped, the server's salt applied. A route that
appears after start was never enumerated: the boundary passes it through
untouched, and it can reach the engine only to be refused by the engine-core
check, because nothing minted its salt.

Requests are matched to routes by the application's own router (``matches``),
so path tricks (trailing slashes, percent-encoding, mounts) classify exactly as
the engine would dispatch them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

WEBSOCKET = "WEBSOCKET"
ANY_METHOD = "*"


class Binding(StrEnum):
    """What the boundary does with a route."""

    PUBLIC = "public"  # serves no tenant data: health, models, docs, metrics (filtered where needed)
    PROMPT = "prompt"  # carries a prompt to the engine: tenant required, client salt replaced by the server's
    TENANT = "tenant"  # tenant data without the engine's cache (tokenize, render): tenant required
    ADMIN = (
        "admin"  # operator routes: the adapter's admin policy decides (refused unless an admin key guards it)
    )
    REFUSED = "refused"  # cannot be bound (a body pccguard cannot rewrite, a store shared by all tenants)
    UNLISTED = "unlisted"  # live at start, absent from the table: the prompt policy, generically


#: Bindings that require an identified tenant.
TENANT_BINDINGS = frozenset({Binding.PROMPT, Binding.TENANT, Binding.UNLISTED})


@dataclass(frozen=True)
class RouteSpec:
    """One route of an engine version's table; ``when`` names the condition under which the engine serves it."""

    path: str
    methods: frozenset[str]
    binding: Binding
    carries_prompt: bool
    when: str = "always"
    why: str = ""


def spec(
    path: str, methods: str, binding: Binding, *, prompt: bool = False, when: str = "always", why: str = ""
) -> RouteSpec:
    """Shorthand for tables: ``spec("/v1/completions", "POST", Binding.PROMPT, prompt=True)``."""
    return RouteSpec(path, frozenset(methods.split()), binding, prompt, when, why)


@dataclass(frozen=True)
class RouteTable:
    """The routes an engine version registers, with their bindings."""

    engine: str
    version: str
    specs: tuple[RouteSpec, ...]
    _index: dict[tuple[str, str], RouteSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for s in self.specs:
            for method in s.methods:
                key = (s.path, method)
                if key in self._index:
                    raise ValueError(f"route {method} {s.path} is listed twice in the {self.engine} table")
                self._index[key] = s

    def lookup(self, path: str, method: str) -> RouteSpec | None:
        return self._index.get((path, method)) or self._index.get((path, ANY_METHOD))

    def served(self, conditions: Mapping[str, bool]) -> list[RouteSpec]:
        """The routes served under ``conditions`` (``always`` is always true; an unknown condition is false)."""
        return [s for s in self.specs if s.when == "always" or conditions.get(s.when, False)]


@dataclass(frozen=True)
class LiveRoute:
    path: str
    methods: frozenset[str]


def _methods(route: Any) -> frozenset[str]:
    if "websocket" in type(route).__name__.lower():
        return frozenset({WEBSOCKET})
    methods = getattr(route, "methods", None)
    if not methods:
        return frozenset({ANY_METHOD})
    return frozenset(m for m in methods if m != "HEAD") or frozenset({"HEAD"})


def _children(route: Any) -> Iterable[Any] | None:
    candidates = getattr(route, "effective_candidates", None)
    if callable(candidates):  # FastAPI >= 0.16x keeps included routers as one route
        return list(candidates())
    return None


def leaf_routes(app: Any) -> Iterator[Any]:
    """Every route object of an app built on Starlette's router, included routers' too, in dispatch order."""

    def walk(routes: Iterable[Any]) -> Iterator[Any]:
        for route in routes:
            nested = _children(route)
            if nested is not None:
                yield from walk(nested)
            else:
                yield route

    yield from walk(getattr(getattr(app, "router", app), "routes", []))


def enumerate_routes(app: Any) -> list[LiveRoute]:
    """Every route of an ASGI application built on Starlette's router, depth first, in dispatch order."""
    out: list[LiveRoute] = []
    for route in leaf_routes(app):
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            raise ValueError(f"route {type(route).__name__} has no path pccguard can classify")
        out.append(LiveRoute(path, _methods(route)))
    return out


def match_route(app: Any, scope: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(path template, method)`` of the route the application's router will dispatch ``scope`` to.

    ``None`` when no route matches fully (the application answers 404 or 405
    itself, or redirects to a path that is then classified on its own).
    """
    from starlette.routing import Match

    router = getattr(app, "router", app)
    for route in getattr(router, "routes", []):
        match, child = route.matches(scope)
        if match == Match.FULL:
            leaf = child.get("route", route) if isinstance(child, dict) else route
            path = getattr(leaf, "path", None)
            if not isinstance(path, str):
                return None
            method = WEBSOCKET if scope.get("type") == "websocket" else str(scope.get("method", ""))
            methods = _methods(leaf)
            if method == "HEAD" and "GET" in methods:  # Starlette answers HEAD with the GET route
                method = "GET"
            elif method not in methods and ANY_METHOD in methods:
                method = ANY_METHOD
            return path, method
    return None


@dataclass(frozen=True)
class BoundRoutes:
    """The bindings of one live application, fixed at start."""

    table: RouteTable
    bindings: dict[tuple[str, str], Binding]
    unlisted: tuple[str, ...]

    @classmethod
    def of(cls, app: Any, table: RouteTable, overrides: Mapping[str, Binding] | None = None) -> BoundRoutes:
        """Enumerate ``app`` and bind every route; ``overrides`` rebinds paths for this start (e.g. refused)."""
        bindings: dict[tuple[str, str], Binding] = {}
        unlisted: list[str] = []
        for route in enumerate_routes(app):
            for method in sorted(route.methods):
                known = table.lookup(route.path, method)
                binding = known.binding if known is not None else Binding.UNLISTED
                if method == WEBSOCKET and binding in TENANT_BINDINGS:
                    binding = Binding.REFUSED  # frames cannot be rewritten: no salt can be applied
                if overrides and route.path in overrides:
                    binding = overrides[route.path]
                if known is None:
                    unlisted.append(f"{method} {route.path}")
                bindings.setdefault((route.path, method), binding)
        return cls(table=table, bindings=bindings, unlisted=tuple(unlisted))

    def binding(self, app: Any, scope: Mapping[str, Any]) -> tuple[str, Binding | None] | None:
        """``(template, binding)`` of a request's route; binding ``None`` for a route added after start.

        ``None`` when no route matches (the app answers 404 or 405 itself).
        """
        found = match_route(app, scope)
        if found is None:
            return None
        return found[0], self.bindings.get(found)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for binding in self.bindings.values():
            counts[binding.value] = counts.get(binding.value, 0) + 1
        return dict(sorted(counts.items()))

    def __iter__(self) -> Iterator[tuple[tuple[str, str], Binding]]:
        return iter(sorted(self.bindings.items()))


def route_facts(specs: Iterable[RouteSpec]) -> list[dict[str, Any]]:
    """``api.routes`` facts for the routes an engine serves on its own: nothing binds them to a tenant.

    The tenant boundary is what binds them; with it installed, the rule that
    reads these facts is ``enforced`` by ``tenant_cache_salt``.
    """
    merged: dict[str, dict[str, Any]] = {}
    for s in specs:
        entry = merged.setdefault(s.path, {"path": s.path, "methods": [], "carries_prompt": False})
        entry["methods"] = sorted({*entry["methods"], *s.methods})
        entry["carries_prompt"] = entry["carries_prompt"] or s.carries_prompt
    return [{**entry, "tenant_bound": False} for entry in merged.values()]
