"""The tenant boundary: one ASGI middleware in front of both engines' HTTP apps.

At start (the ASGI lifespan, or the first request where an app runs without
one) it enumerates the live app's routes and binds each one
(:mod:`pccguard.enforcement.tenancy.routes`). Then, for every request:

* **public** routes pass, through a response filter where the adapter names one
  (vLLM's ``/metrics`` without its cache-hit series);
* **prompt** and **unlisted** routes need an identified tenant (else 401), a
  JSON object body (else 400), lose any client ``cache_salt``, and run with
  the tenant bound (:func:`~pccguard.enforcement.tenancy.identity.tenant_scope`); where
  the adapter says so, the body gets a salt token minted for the tenant;
* **tenant** routes need a tenant and lose any client ``cache_salt``;
* **admin** routes follow the adapter's admin policy (refused, or left to the
  engine's admin-key check that pccguard hardens);
* **refused** routes answer 403.

Routes the app gained after start are passed through untouched: the engine
core refuses whatever of theirs reaches it without a minted salt. The same
request gets the same status and the same error body in both engines.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pccguard.enforcement import guarantee_metrics
from pccguard.enforcement.audit import AuditKind, AuditLog
from pccguard.enforcement.guarantee_metrics import CounterReader
from pccguard.enforcement.selftest import AsyncCheck, SelfTestOutcome, gate, run_checks_async
from pccguard.enforcement.tenancy.identity import TenantResolver, tenant_scope
from pccguard.enforcement.tenancy.routes import Binding, BoundRoutes, RouteTable
from pccguard.enforcement.tenancy.salts import SaltKeys
from pccguard.errors import EnforcementError, PccguardError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
BodyFilter = Callable[[bytes], bytes]
#: ``record(outcome, tenant)``: the adapter's audit of a boundary decision (a reason code, never content).
Recorder = Callable[[str, "str | None"], None]

#: Request bodies larger than this are refused (413) rather than buffered.
MAX_BODY_BYTES = 64 * 1024 * 1024
SALT_FIELD = "cache_salt"

logger = logging.getLogger("pccguard.tenancy")

#: Each boundary outcome and the audit record it leaves: (kind, mitigation, reason code).
#: ``tenant_bound`` leaves none here: the engine core counts every admitted salt.
AUDIT_RECORDS: dict[str, tuple[AuditKind, str, str | None]] = {
    "no_tenant": (AuditKind.REQUEST_REFUSED, "tenant_cache_salt", "no_tenant"),
    "unbindable_body": (AuditKind.REQUEST_REFUSED, "tenant_cache_salt", "unbindable_body"),
    "no_salt_keys": (AuditKind.REQUEST_REFUSED, "tenant_cache_salt", "no_salt_keys"),
    "client_salt_overridden": (AuditKind.CLIENT_SALT_OVERRIDDEN, "tenant_cache_salt", None),
    "route_refused": (AuditKind.ENDPOINT_REFUSED, "tenant_cache_salt", "route_cannot_be_bound"),
    "admin_route_closed": (AuditKind.ENDPOINT_REFUSED, "close_privileged_endpoints", "admin_route_closed"),
    "unbound_route": (AuditKind.REQUEST_REFUSED, "tenant_cache_salt", "route_added_after_start"),
    "warmup": (AuditKind.CACHE_SALT_APPLIED, "tenant_cache_salt", "warmup_one_off_tenant"),
}


@dataclass(frozen=True)
class BoundaryPolicy:
    """What an adapter tells the boundary about its engine."""

    engine: str
    table: RouteTable
    resolver: TenantResolver
    #: Where the tenant's salt token goes: into the body's ``cache_salt`` (vLLM), or nowhere because a
    #: hook beneath the routes applies it (SGLang's ``generate_request``).
    salt_in_body: bool
    #: The key set that mints tokens (only read when ``salt_in_body``); ``None`` refuses prompt requests.
    keys: Callable[[], SaltKeys | None]
    record: Recorder
    admin: Literal["refuse", "engine"] = "refuse"
    #: Public routes whose response body is filtered (template -> filter).
    filters: Mapping[str, BodyFilter] = field(default_factory=dict)
    #: Routes refused for this start (e.g. a response store shared by all tenants).
    refused_paths: frozenset[str] = frozenset()
    #: While this answers True, a request from loopback without a tenant runs as a one-off tenant of its own
    #: (SGLang's start-up warmup calls its own ``/generate``); it shares nothing with anyone.
    warmup_open: Callable[[], bool] = field(default=lambda: False)
    #: The self-tests of what this boundary enforces (mitigation -> check), given the live app and its
    #: bindings; run during the app's start-up, which fails unless they pass (``startup_checks``).
    selftests: Callable[[Any, BoundRoutes], Mapping[str, AsyncCheck]] | None = None
    #: Where the self-tests' results are audited (required with ``selftests``).
    audit: AuditLog | None = None
    #: Told what the self-tests proved, or the one-line refusal that failed the start-up (the engine
    #: keeps the outcome for its statement, or raises the refusal where its server's start returns).
    on_selftests: Callable[[SelfTestOutcome | None, str | None], None] = field(
        default=lambda outcome, refusal: None
    )
    #: Every process's audit counters, for pccguard's own metrics route (``guarantee_metrics.PATH``);
    #: ``None``: the route is not served.
    counters: CounterReader | None = None


class TenantBoundary:
    """ASGI middleware; construct with the inner app and a :class:`BoundaryPolicy`."""

    def __init__(self, app: ASGIApp, policy: BoundaryPolicy) -> None:
        self.app = app
        self.policy = policy
        self.routes: BoundRoutes | None = None
        #: What the start-up self-tests proved (``None`` until they ran).
        self.proven: SelfTestOutcome | None = None

    # ------------------------------------------------------------------ start

    def bind(self, asgi_app: Any) -> BoundRoutes:
        """Enumerate and bind the live app's routes (once); raises if they cannot be read."""
        if self.routes is None:
            overrides = dict.fromkeys(self.policy.refused_paths, Binding.REFUSED)
            self.routes = BoundRoutes.of(asgi_app, self.policy.table, overrides)
            logger.info(
                "pccguard: %s routes bound at the tenant boundary: %s%s",
                self.policy.engine,
                ", ".join(f"{k} {v}" for k, v in self.routes.summary().items()),
                f"; not in pccguard's table (prompt policy): {', '.join(self.routes.unlisted)}"
                if self.routes.unlisted
                else "",
            )
        return self.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            app = scope.get("app")
            routes = self.bind(app)  # at start: an error here fails the app's start-up
            await self._start(app, routes, scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reader = self.policy.counters
        if kind == "http" and scope.get("path") == guarantee_metrics.PATH and reader is not None:
            await self._guarantee_metrics(reader, scope, send)
            return
        routes = self.bind(scope.get("app"))
        found = routes.binding(scope.get("app"), scope)
        if found is None or found[1] is None:
            # No route (the app answers 404/405 itself), or one added after start: passed through, and
            # the engine core refuses whatever of it arrives without a minted salt.
            if found is not None:
                self.policy.record("unbound_route", None)
            await self.app(scope, receive, send)
            return
        template, binding = found[0], found[1]
        if kind == "websocket":
            await self._websocket(binding, scope, receive, send)
            return
        if binding == Binding.PUBLIC:
            await self._public(template, scope, receive, send)
        elif binding == Binding.ADMIN and self.policy.admin == "engine":
            await self.app(scope, receive, send)
        elif binding in (Binding.ADMIN, Binding.REFUSED):
            self.policy.record("route_refused" if binding == Binding.REFUSED else "admin_route_closed", None)
            await respond(send, 403, "refused by pccguard: this route is not served to tenants")
        else:
            await self._tenant_route(binding, scope, receive, send)

    async def _start(self, app: Any, routes: BoundRoutes, scope: Scope, receive: Receive, send: Send) -> None:
        """The lifespan: the self-tests run when the server asks the app to start, before the engine's own
        start-up; a failure answers ``lifespan.startup.failed``, so the server never listens, and the engine's
        start-up (SGLang's starts a warmup that calls the server) never begins."""
        policy = self.policy
        if policy.selftests is None:
            await self.app(scope, receive, send)
            return
        first = await receive()
        if first.get("type") == "lifespan.startup":
            try:
                self.proven = await prove_boundary(policy, app, routes)
            except Exception as exc:  # fail closed: any error in a self-test fails the start-up
                text = exc.one_line() if isinstance(exc, PccguardError) else f"{type(exc).__name__}: {exc}"
                logger.error("%s", text)
                policy.on_selftests(None, text)
                await send({"type": "lifespan.startup.failed", "message": text})
                return
            policy.on_selftests(self.proven, None)
        pending = [first]

        async def replayed() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replayed, send)

    # ------------------------------------------------------------------ bindings

    async def _tenant_route(self, binding: Binding, scope: Scope, receive: Receive, send: Send) -> None:
        headers = list(scope.get("headers", []))
        tenant = self.policy.resolver.tenant(headers)
        if tenant is None and self._warmup(scope):
            tenant = f"pccguard-warmup-{secrets.token_hex(16)}"
            self.policy.record("warmup", None)
        if tenant is None:
            self.policy.record("no_tenant", None)
            await respond(send, 401, "tenant not identified")
            return
        body, complete = await read_body(receive, MAX_BODY_BYTES)
        if not complete:
            await respond(send, 413, f"request body larger than {MAX_BODY_BYTES} bytes")
            return
        doc: Any = None
        if body.strip():
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError):
                doc = _NOT_JSON
        carries_prompt = binding in (Binding.PROMPT, Binding.UNLISTED)
        # A prompt must arrive as a JSON object, the only body whose salt pccguard can set; an unlisted
        # route may also be asked without a body (a GET), which carries no prompt.
        needs_object = binding == Binding.PROMPT or (binding == Binding.UNLISTED and doc is not None)
        if needs_object and not isinstance(doc, dict):
            self.policy.record("unbindable_body", tenant)
            await respond(send, 400, "the request body must be a JSON object on this route")
            return
        if isinstance(doc, dict):
            if doc.pop(SALT_FIELD, None) is not None:
                self.policy.record("client_salt_overridden", tenant)
            if carries_prompt and self.policy.salt_in_body:
                keys = self.policy.keys()
                if keys is None:  # never expected: the plugin installs the keys before serving
                    self.policy.record("no_salt_keys", tenant)
                    await respond(send, 503, "pccguard has no salt keys in this process")
                    return
                doc[SALT_FIELD] = keys.mint(keys.tenant_salt(tenant))
            body = json.dumps(doc).encode("utf-8")
        self.policy.record("tenant_bound", tenant)
        strip = self.policy.resolver.header
        forwarded = [(k, v) for k, v in headers if k.lower() not in (strip, b"content-length")]
        forwarded.append((b"content-length", str(len(body)).encode("latin-1")))
        with tenant_scope(tenant):
            await self.app(dict(scope, headers=forwarded), replay(body, receive), send)

    async def _guarantee_metrics(self, reader: CounterReader, scope: Scope, send: Send) -> None:
        """pccguard's counters, summed over the engine's processes; 503 when any process cannot be read."""
        if scope.get("method") not in ("GET", "HEAD"):
            await respond(send, 405, "pccguard's metrics are read with GET")
            return
        try:
            body = guarantee_metrics.exposition(guarantee_metrics.merged(await reader(scope.get("app"))))
        except Exception as exc:  # a scrape that cannot be read fails; it never answers zeros
            logger.warning("pccguard: metrics unavailable: %s: %s", type(exc).__name__, str(exc)[:200])
            await respond(send, 503, "pccguard's counters could not be read from every engine process")
            return
        headers = [
            (b"content-type", guarantee_metrics.CONTENT_TYPE),
            (b"content-length", str(len(body)).encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})

    def _warmup(self, scope: Scope) -> bool:
        client = scope.get("client") or ("", 0)
        return bool(self.policy.warmup_open()) and str(client[0]) in ("127.0.0.1", "::1")

    async def _public(self, template: str, scope: Scope, receive: Receive, send: Send) -> None:
        transform = self.policy.filters.get(template)
        if transform is None or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        await filter_response(self.app, scope, receive, send, transform)

    async def _websocket(self, binding: Binding, scope: Scope, receive: Receive, send: Send) -> None:
        if binding == Binding.PUBLIC:
            await self.app(scope, receive, send)
            return
        self.policy.record("route_refused", None)
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": "refused by pccguard"})


class _NotJson:
    pass


_NOT_JSON = _NotJson()


def error_body(status: int, message: str) -> bytes:
    """The error document of every boundary refusal (OpenAI's error shape)."""
    return json.dumps(
        {"error": {"message": message, "type": "pccguard_tenant_boundary", "param": None, "code": status}}
    ).encode("utf-8")


async def prove_boundary(policy: BoundaryPolicy, app: Any, routes: BoundRoutes) -> SelfTestOutcome:
    """Run the boundary's self-tests on the live app; ``EnforcementError`` names the first that failed."""
    if policy.selftests is None or policy.audit is None:
        raise EnforcementError(f"pccguard refuses to start {policy.engine}: the boundary has no self-tests")
    checks = policy.selftests(app, routes)
    started = time.perf_counter()
    records = await run_checks_async(checks, checks)
    outcome = gate(policy.engine, records, time.perf_counter() - started, policy.audit)
    logger.info("pccguard: tenant boundary: %s", outcome.summary())
    return outcome


async def respond(send: Send, status: int, message: str) -> None:
    data = error_body(status, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole request body, and False if it exceeded ``limit`` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), True


def replay(body: bytes, upstream: Receive) -> Receive:
    """The rewritten body once, then the client's own messages (so disconnects still arrive)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await upstream()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def filter_response(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, transform: BodyFilter
) -> None:
    """Serve ``app``'s response with its body passed through ``transform`` (asked for uncompressed)."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"accept-encoding"]
    start: Message | None = None
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await _send_filtered(send, start, b"".join(chunks), transform)
            return
        await send(message)

    await app(dict(scope, headers=headers), receive, capture)


async def _send_filtered(send: Send, start: Message | None, body: bytes, transform: BodyFilter) -> None:
    if start is None:  # a body without a response start: nothing sane to filter
        raise RuntimeError("response body sent before its start")
    status = int(start.get("status", 200))
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    if status == 200 and not any(k.lower() == b"content-encoding" for k, _ in headers):
        body = transform(body)
    elif status == 200:  # an encoding we did not ask for: refuse rather than pass the series through
        status, body = 500, b"unavailable\n"
        headers = [(b"content-type", b"text/plain")]
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
