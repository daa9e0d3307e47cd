"""The tenant boundary's start-up self-tests on vLLM's real API application (``build_app``).

When uvicorn asks vLLM's app to start (its lifespan), the boundary sends every operator route
and ``/metrics`` through the whole app before vLLM's own start-up runs
(and before it listens). A route left open or a filter that drops nothing turns the start-up
into ``lifespan.startup.failed`` (uvicorn then exits before serving); the
control without the plugin has no such gate and its operator routes answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.asgi_call import asgi_call
from tests.vllm.test_api_app import _app


def _start_up(app: Any) -> list[dict[str, Any]]:
    """Run the app's lifespan start-up as uvicorn does; the messages it sent back."""
    sent: list[dict[str, Any]] = []
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await incoming.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))
        if message["type"].startswith("lifespan.startup."):
            await incoming.put({"type": "lifespan.shutdown"})

    app.state.log_stats = False  # what vLLM's init_app_state sets before the server starts

    async def main() -> None:
        await incoming.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}, "app": app}
        await asyncio.wait_for(app(scope, receive, send), timeout=60)

    asyncio.run(main())
    return sent


def _middleware(app: Any) -> Any:
    stack = app.middleware_stack
    while stack is not None and type(stack).__name__ != "PccguardTenantMiddleware":
        stack = getattr(stack, "app", None)
    return stack


def test_operator_routes_and_metrics_are_proven_before_serving(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    app = _app(tiny_model, monkeypatch)
    sent = _start_up(app)
    assert sent[0]["type"] == "lifespan.startup.complete", sent
    proven = _middleware(app).proven
    records = {r.mitigation: r for r in proven.records}
    assert records["close_privileged_endpoints"].passed
    assert "operator routes enumerated from the live app" in records["close_privileged_endpoints"].checked
    assert records["disable:cache_hit_metrics"].passed


def test_an_operator_route_left_open_fails_the_start_up(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the boundary lets operator routes through; the self-test finds one that answers."""
    from pccguard.enforcement.tenancy import boundary

    plugin_config("profile: multi-tenant-baseline\n")
    original = boundary.TenantBoundary.__call__

    async def leaky(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path") == "/scale_elastic_ep":
            await self.app(scope, receive, send)  # an operator route left open
            return
        await original(self, scope, receive, send)

    monkeypatch.setattr(boundary.TenantBoundary, "__call__", leaky)
    app = _app(tiny_model, monkeypatch)
    sent = _start_up(app)
    assert sent[0]["type"] == "lifespan.startup.failed", sent
    message = sent[0]["message"]
    assert "\n" not in message
    assert message.startswith(
        "pccguard refuses to start vllm: self-test of close_privileged_endpoints failed: "
    )
    assert "operator routes did not refuse a caller without the admin key" in message
    assert "POST /scale_elastic_ep reached its endpoint" in message  # found, and never run


def test_without_the_plugin_operator_routes_answer(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: vLLM as shipped serves its operator routes to anyone (here: a handler, not a refusal)."""
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.entrypoints.launchers.app import build_app
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    plugin_config("enabled: false\n")
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", str(tiny_model)])
    app = build_app(args, supported_tasks=("generate",))
    assert not args.middleware
    status, _ = asgi_call(app, "POST", "/scale_elastic_ep", [(b"content-type", b"application/json")], b"{}")
    assert status not in (401, 403, 404)
