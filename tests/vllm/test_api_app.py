"""The tenant middleware inside vLLM's real API application (``build_app``), added through ``--middleware``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.vllm.runtime import hooks
from pccguard.adapters.vllm.runtime.middleware import MIDDLEWARE_QUALNAME


def _app(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.entrypoints.launchers.app import build_app
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    monkeypatch.setattr(sys, "argv", ["vllm", "serve", str(tiny_model)])  # as in the API server process
    hooks.install_middleware_hook()
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", str(tiny_model)])
    app = build_app(args, supported_tasks=("generate",))
    assert MIDDLEWARE_QUALNAME in args.middleware
    return app


def test_middleware_is_registered_by_vllm(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    app = _app(tiny_model, monkeypatch)
    names = [m.cls.__name__ for m in app.user_middleware]
    assert "PccguardTenantMiddleware" in names


def test_untenanted_generation_request_is_refused_by_the_app(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    app = _app(tiny_model, monkeypatch)
    sent: list[dict[str, Any]] = []
    body = json.dumps({"model": "m", "prompt": "secret", "cache_salt": "copied"}).encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/completions",
        "raw_path": b"/v1/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 401
