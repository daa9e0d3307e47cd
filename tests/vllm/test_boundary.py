"""The shared tenant boundary (``pccguard.enforcement.tenancy.boundary``) on a real FastAPI app, bound by vLLM's table.

Each binding is driven through real Starlette routing: what reaches the route
handler (the body the engine would get, the headers) is recorded, so every
refusal is shown next to the request that passes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import FastAPI, Request, WebSocket

from pccguard.adapters.vllm.runtime.audit import replace_audit_log
from pccguard.adapters.vllm.runtime.middleware import PccguardTenantMiddleware
from pccguard.enforcement.audit import AuditEvent, AuditLog
from pccguard.enforcement.config import PluginConfig
from pccguard.enforcement.tenancy.boundary import MAX_BODY_BYTES
from pccguard.enforcement.tenancy.salts import is_token, process_keys
from tests.asgi_call import asgi_call

TENANT = b"x-pccguard-tenant"


class Served:
    """A FastAPI app with one route per binding, behind the plugin's middleware."""

    def __init__(self, config: str = "{}") -> None:
        self.seen: list[tuple[str, dict[str, Any] | None, dict[str, str]]] = []
        self.events: list[AuditEvent] = []
        self._previous = replace_audit_log(AuditLog("vllm", sinks=[self.events.append]))
        app = FastAPI()
        self.app = app

        async def record(request: Request) -> dict[str, Any]:
            raw = await request.body()
            self.seen.append((request.url.path, json.loads(raw) if raw else None, dict(request.headers)))
            return {"ok": True}

        for path in ("/v1/completions", "/tokenize", "/scale_elastic_ep", "/v1/audio/transcriptions"):
            app.add_api_route(path, record, methods=["POST"])
        app.add_api_route("/v1/brand_new", record, methods=["POST", "GET"])  # a route the table lacks
        app.add_api_route("/health", record, methods=["GET", "HEAD"])

        @app.websocket("/v1/realtime")
        async def realtime(ws: WebSocket) -> None:
            await ws.accept()
            await ws.close()

        app.add_middleware(PccguardTenantMiddleware, settings=PluginConfig.model_validate(json.loads(config)))

    def close(self) -> None:
        replace_audit_log(self._previous)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | list[bytes] = b"",
        tenant: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        client: str = "10.0.0.7",
    ) -> tuple[int, dict[str, Any] | None]:
        hdrs = [(b"content-type", b"application/json"), *(headers or [])]
        if tenant is not None:
            hdrs.append((TENANT, tenant.encode()))
        status, raw = asgi_call(self.app, method, path, hdrs, body, client)
        return status, (json.loads(raw) if raw else None)

    def outcomes(self) -> list[str]:
        return [f"{e.kind.value}:{e.reason}" for e in self.events]


@pytest.fixture
def served() -> Any:
    app = Served()
    yield app
    app.close()


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_prompt_route_needs_a_tenant_and_gets_a_minted_salt(served: Served) -> None:
    body = _json({"prompt": "secret", "cache_salt": "chosen-by-client"})
    status, error = served.call("POST", "/v1/completions", body)
    assert status == 401 and error is not None
    assert error["error"]["type"] == "pccguard_tenant_boundary" and error["error"]["code"] == 401
    assert served.seen == []  # nothing reached the route

    status, _ = served.call("POST", "/v1/completions", body, tenant="alice")
    assert status == 200  # positive control: the identified tenant is served
    _, doc, headers = served.seen[-1]
    assert doc is not None and doc["prompt"] == "secret"
    salt = doc["cache_salt"]
    assert is_token(salt) and process_keys().open(salt) == process_keys().tenant_salt("alice")
    assert TENANT.decode() not in headers  # the tenant header goes no further than the boundary
    assert "client_salt_overridden:None" in served.outcomes()


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b"[1, 2]", 400), (b"", 400), (b'"text"', 400), (b'{"prompt": "x"}', 200)],
)
def test_prompt_route_needs_a_json_object(served: Served, body: bytes, status: int) -> None:
    assert served.call("POST", "/v1/completions", body, tenant="alice")[0] == status


def test_oversized_body_is_refused_without_buffering_it(served: Served) -> None:
    chunk = b" " * (MAX_BODY_BYTES // 2 + 1)
    assert served.call("POST", "/v1/completions", [b"{", chunk, chunk, b"}"], tenant="alice")[0] == 413
    assert served.call("POST", "/v1/completions", [b'{"prompt":', b'"x"}'], tenant="alice")[0] == 200


def test_ambiguous_tenant_is_no_tenant(served: Served) -> None:
    two = [(TENANT, b"alice"), (TENANT, b"bob")]
    assert served.call("POST", "/v1/completions", _json({}), headers=two)[0] == 401


def test_tenant_route_strips_the_salt_but_mints_none(served: Served) -> None:
    assert served.call("POST", "/tokenize", _json({"prompt": "x"}))[0] == 401
    assert (
        served.call("POST", "/tokenize", _json({"prompt": "x", "cache_salt": "c"}), tenant="alice")[0] == 200
    )
    assert "cache_salt" not in (served.seen[-1][1] or {})


def test_public_admin_and_refused_routes(served: Served) -> None:
    assert served.call("GET", "/health")[0] == 200
    assert served.call("HEAD", "/health")[0] == 200  # HEAD is classified as the GET route
    assert served.call("POST", "/scale_elastic_ep", _json({}), tenant="alice")[0] == 403
    assert served.call("POST", "/v1/audio/transcriptions", _json({}), tenant="alice")[0] == 403
    assert {p for p, _, _ in served.seen} == {"/health"}  # the refused routes were never reached
    assert served.call("GET", "/nowhere")[0] == 404  # the app answers unmatched paths itself


def test_unlisted_route_gets_the_prompt_policy(served: Served) -> None:
    assert served.call("POST", "/v1/brand_new", _json({"prompt": "x"}))[0] == 401
    assert served.call("POST", "/v1/brand_new", _json({"prompt": "x"}), tenant="alice")[0] == 200
    assert is_token((served.seen[-1][1] or {})["cache_salt"])
    assert served.call("POST", "/v1/brand_new", b"raw", tenant="alice")[0] == 400
    assert served.call("GET", "/v1/brand_new", tenant="alice")[0] == 200  # no body, no prompt
    assert served.call("GET", "/v1/brand_new")[0] == 401


def test_route_added_after_start_is_passed_through_and_recorded(served: Served) -> None:
    assert served.call("GET", "/health")[0] == 200  # the first request binds the routes

    async def late(request: Request) -> dict[str, Any]:
        raw = await request.body()
        served.seen.append((request.url.path, json.loads(raw), dict(request.headers)))
        return {}

    served.app.router.add_api_route("/v1/added_later", late, methods=["POST"])
    assert served.call("POST", "/v1/added_later", _json({"prompt": "x", "cache_salt": "mine"}))[0] == 200
    # Untouched: the client's own salt travels on, and the engine core is what refuses it.
    assert (served.seen[-1][1] or {})["cache_salt"] == "mine"
    assert "request_refused:route_added_after_start" in served.outcomes()


def test_warmup_window_is_loopback_only_and_one_off() -> None:
    from pccguard.enforcement.tenancy.boundary import TenantBoundary

    app = Served()
    try:
        middleware = _boundary(app)
        assert isinstance(middleware, TenantBoundary)
        object.__setattr__(middleware.policy, "warmup_open", lambda: True)
        assert app.call("POST", "/v1/completions", _json({"prompt": "w"}), client="127.0.0.1")[0] == 200
        assert app.call("POST", "/v1/completions", _json({"prompt": "w"}), client="127.0.0.1")[0] == 200
        first, second = (doc["cache_salt"] for _, doc, _ in app.seen if doc)
        assert process_keys().open(first) != process_keys().open(second)  # each warmup its own tenant
        assert app.call("POST", "/v1/completions", _json({"prompt": "w"}), client="10.0.0.7")[0] == 401
    finally:
        app.close()


def _boundary(app: Served) -> Any:
    """The middleware instance of a built app (built on its first request)."""
    app.call("GET", "/health")
    layer = app.app.middleware_stack
    while layer is not None and not isinstance(layer, PccguardTenantMiddleware):
        layer = getattr(layer, "app", None)
    return layer


def test_websocket_on_a_prompt_route_is_refused(served: Served) -> None:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "websocket.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/v1/realtime",
        "raw_path": b"/v1/realtime",
        "query_string": b"",
        "root_path": "",
        "headers": [(TENANT, b"alice")],
        "client": ("10.0.0.7", 1),
        "server": ("test", 80),
        "scheme": "ws",
        "subprotocols": [],
    }
    asyncio.run(served.app(scope, receive, send))
    assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008


@pytest.mark.parametrize(("close", "admin_status"), [("true", 403), ("false", 200)], ids=["closed", "open"])
def test_single_tenant_mode_serves_without_a_header(close: str, admin_status: int) -> None:
    """One tenant needs no header; operator routes are closed unless ``close_privileged_endpoints`` is off."""
    app = Served(
        f'{{"tenancy": {{"mode": "single"}}, "mitigations": {{"close_privileged_endpoints": {close}}}}}'
    )
    try:
        assert app.call("POST", "/v1/completions", _json({"prompt": "x", "cache_salt": "c"}))[0] == 200
        salt = (app.seen[-1][1] or {})["cache_salt"]
        assert process_keys().open(salt) == process_keys().tenant_salt("default")
        assert app.call("POST", "/scale_elastic_ep", _json({}))[0] == admin_status
    finally:
        app.close()
