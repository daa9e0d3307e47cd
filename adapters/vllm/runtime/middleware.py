"""The HTTP ingress half of ``tenant_cache_salt`` (added through vLLM's ``--middleware``).

It also serves ``disable:cache_hit_metrics``: ``GET /metrics`` passes through
:mod:`.metrics_filter`.

For every generation request the middleware identifies the tenant (the
configured header, or the API key looked up in a file of SHA-256 digests),
strips the tenant header, and writes the tenant's keyed pseudonym into the
body's ``cache_salt`` -- overriding any salt the client sent, so copying a
victim's salt buys nothing. The scheduler turns the pseudonym into the
effective salt (``salt.TenantSalter``). Requests without a tenant in
multi-tenant mode are refused with 401. Nothing identifying is logged; audit
events carry only the keyed tenant reference.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.adapters.vllm.runtime.metrics_filter import drop_series
from pccguard.adapters.vllm.runtime.salt import IngressPseudonyms
from pccguard.audit import AuditKind
from pccguard.config import PluginConfig, TenancyConfig, load_plugin_config

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Routes whose body carries ``cache_salt`` into the engine.
SALTED_SUFFIXES = ("/completions", "/chat/completions", "/responses", "/messages", "/generate")


class TenantResolver:
    """Who is asking: from a header, or from the API key (compared in constant time against stored digests)."""

    def __init__(self, tenancy: TenancyConfig) -> None:
        self.tenancy = tenancy
        self.header = tenancy.tenant_header.lower().encode("latin-1")
        self._key_digests: list[tuple[bytes, str]] = []
        if tenancy.identified_by == "api_key" and tenancy.api_keys_file is not None:
            data = yaml.safe_load(Path(tenancy.api_keys_file).read_text(encoding="utf-8")) or {}
            self._key_digests = [(bytes.fromhex(str(d)), str(t)) for d, t in dict(data).items()]

    def tenant(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        if self.tenancy.mode == "single":
            return "default"
        if self.tenancy.identified_by == "header":
            for name, value in headers:
                if name.lower() == self.header and value.strip():
                    return value.decode("latin-1").strip()
            return None
        token = None
        for name, value in headers:
            if name.lower() == b"authorization" and value.lower().startswith(b"bearer "):
                token = value[7:].strip()
        if not token:
            return None
        digest = hashlib.sha256(token).digest()
        found = None
        for stored, tenant in self._key_digests:  # check every entry: timing does not reveal the position
            if hmac.compare_digest(stored, digest):
                found = tenant
        return found


class PccguardTenantMiddleware:
    """ASGI middleware; vLLM adds it with ``app.add_middleware`` (no arguments: it reads ``PCCGUARD_CONFIG``)."""

    def __init__(self, app: ASGIApp, settings: PluginConfig | None = None) -> None:
        self.app = app
        self.settings = settings or load_plugin_config()
        self.resolver = TenantResolver(self.settings.tenancy)
        self.pseudonyms = IngressPseudonyms()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") == "http"
            and scope.get("method") == "GET"
            and str(scope.get("path", "")).rstrip("/") == "/metrics"
            and self.settings.mitigations.drop_cache_hit_metrics
        ):
            await self._filtered_metrics(scope, receive, send)
            return
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if not path.endswith(SALTED_SUFFIXES):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        tenant = self.resolver.tenant(headers)
        log = audit_log()
        if tenant is None:
            log.emit(
                AuditKind.REQUEST_REFUSED, mitigation="tenant_cache_salt", unit="requests", reason="no_tenant"
            )
            await _respond(send, 401, {"error": {"message": "tenant not identified", "code": 401}})
            return
        body = await _read_body(receive)
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            if doc.get("cache_salt") is not None:
                log.emit(
                    AuditKind.CLIENT_SALT_OVERRIDDEN,
                    mitigation="tenant_cache_salt",
                    unit="requests",
                    tenant=tenant,
                )
            doc["cache_salt"] = self.pseudonyms(tenant)
            body = json.dumps(doc).encode("utf-8")
        strip = self.resolver.header
        new_headers = [(k, v) for k, v in headers if k.lower() not in (strip, b"content-length")]
        new_headers.append((b"content-length", str(len(body)).encode("latin-1")))
        scope = dict(scope, headers=new_headers)
        await self.app(scope, _replay(body, receive), send)

    async def _filtered_metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``/metrics`` without the hit-oracle series (``disable:cache_hit_metrics``)."""
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
                    await _send_filtered(send, start, b"".join(chunks))
                return
            await send(message)

        await self.app(dict(scope, headers=headers), receive, capture)


async def _send_filtered(send: Send, start: Message | None, body: bytes) -> None:
    if start is None:  # the app sent a body without starting a response: nothing sane to filter
        raise RuntimeError("/metrics answered without a response start")
    status = int(start.get("status", 200))
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    if status == 200 and not any(k.lower() == b"content-encoding" for k, _ in headers):
        body = drop_series(body)
    elif status == 200:  # an encoding we did not ask for: refuse rather than pass hit counters through
        status, body = 500, b"metrics unavailable\n"
        headers = [(b"content-type", b"text/plain")]
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The rewritten body once, then the client's own messages (so disconnects still arrive)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await upstream()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


MIDDLEWARE_QUALNAME = f"{__name__}.PccguardTenantMiddleware"
