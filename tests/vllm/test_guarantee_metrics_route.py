"""pccguard's metrics route on vLLM's real API app: served by the boundary, failing closed.

The app is built in process without an engine, so the reader that asks the
engine cores for their counters cannot reach one: the route answers 503 and
never a page of zeros. The counters the engine core answers through vLLM's
utility call are ``tests/vllm/test_engine_process.py``; the whole route on
``vllm serve`` is ``tests/e2e/test_serve_scan.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pccguard.enforcement.guarantee_metrics import PATH
from tests.asgi_call import asgi_call
from tests.vllm.test_api_app import _app


def test_a_reader_that_cannot_reach_the_engine_answers_503(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    app = _app(tiny_model, monkeypatch)
    status, body = asgi_call(app, "GET", PATH, [])
    assert status == 503
    assert b"pccguard_guarantee_events" not in body
    assert "could not be read" in json.loads(body)["error"]["message"]


def test_only_get_is_served(tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    app = _app(tiny_model, monkeypatch)
    status, _ = asgi_call(app, "POST", PATH, [(b"content-type", b"application/json")], b"{}")
    assert status == 405


def test_without_the_plugin_the_route_does_not_exist(tiny_model: Path, plugin_config: Any) -> None:
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.entrypoints.launchers.app import build_app
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    plugin_config("enabled: false\n")
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", str(tiny_model)])
    status, _ = asgi_call(build_app(args, supported_tasks=("generate",)), "GET", PATH, [])
    assert status == 404
