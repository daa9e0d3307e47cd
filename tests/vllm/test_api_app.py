"""The tenant middleware inside vLLM's real API application (``build_app``), added through ``--middleware``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.vllm.runtime import hooks
from pccguard.adapters.vllm.runtime.middleware import MIDDLEWARE_QUALNAME
from tests.asgi_call import asgi_call
from tests.vllm.cases import PROFILER


def fresh_vllm_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Set ``env`` where vLLM reads it: an engine started earlier in this process froze vLLM's env cache."""
    import vllm.envs

    vllm.envs.disable_envs_cache()
    for name, value in env.items():
        monkeypatch.setenv(name, value)


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
    body = json.dumps({"model": "m", "prompt": "secret", "cache_salt": "copied"}).encode()
    status, _ = asgi_call(app, "POST", "/v1/completions", [(b"content-type", b"application/json")], body)
    assert status == 401


@pytest.mark.parametrize("drop", [True, False], ids=["dropped", "control-kept"])
def test_metrics_lose_the_hit_oracle_series(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch, drop: bool
) -> None:
    """vLLM's real Prometheus logger and ``/metrics`` route; the control shows the series exist."""
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    from pccguard.adapters.vllm.runtime.metrics_filter import HIT_ORACLE_FAMILIES

    plugin_config(
        f"profile: multi-tenant-baseline\nmitigations: {{drop_cache_hit_metrics: {str(drop).lower()}}}\n"
    )
    config = EngineArgs(model=str(tiny_model), skip_tokenizer_init=True).create_engine_config()
    PrometheusStatLogger(config, engine_indexes=[0])  # registers vLLM's series, as the API server does
    status, body = asgi_call(
        _app(tiny_model, monkeypatch), "GET", "/metrics", [(b"accept-encoding", b"gzip")]
    )
    text = body.decode()
    assert status == 200
    assert "vllm:num_requests_running" in text  # every other series is left alone
    present = [f for f in HIT_ORACLE_FAMILIES if f in text]
    if drop:
        assert present == []
    else:
        assert {"vllm:prefix_cache_hits", "vllm:prefix_cache_queries", "vllm:prompt_tokens_cached"} <= set(
            present
        )


def test_drop_series_matches_families_not_prefixes() -> None:
    from pccguard.adapters.vllm.runtime.metrics_filter import drop_series

    text = b"\n".join(
        [
            b"# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            b"# TYPE vllm:prompt_tokens_total counter",
            b'vllm:prompt_tokens_total{engine="0",model_name="m"} 96.0',
            b"# HELP vllm:prompt_tokens_cached_total Number of cached prompt tokens.",
            b"# TYPE vllm:prompt_tokens_cached_total counter",
            b'vllm:prompt_tokens_cached_total{engine="0",model_name="m"} 32.0',
            b'vllm:prompt_tokens_cached_created{engine="0",model_name="m"} 1.7e9',
            b'vllm:iteration_tokens_total_bucket{engine="0",le="1.0"} 3.0',
            b"vllm:kv_cache_usage_perc 0.25",
            b"",
        ]
    )
    kept = drop_series(text).decode()
    assert "vllm:prompt_tokens_total{" in kept and "# TYPE vllm:prompt_tokens_total counter" in kept
    assert "cached" not in kept and "iteration_tokens" not in kept and "kv_cache_usage" not in kept


def test_route_table_lists_every_route_vllm_can_serve(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every task's routers, dev mode and fault tolerance: a vLLM bump cannot add a route unseen."""
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.entrypoints.launchers.app import build_app
    from vllm.tasks import GENERATION_TASKS, POOLING_TASKS
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from pccguard.adapters.vllm.routes import ROUTE_TABLE
    from pccguard.enforcement.tenancy.routes import enumerate_routes

    plugin_config("profile: multi-tenant-baseline\n")
    fresh_vllm_env(monkeypatch, VLLM_SERVER_DEV_MODE="1", VLLM_ALLOW_RUNTIME_LORA_UPDATING="1")
    monkeypatch.setattr(sys, "argv", ["vllm", "serve", str(tiny_model)])
    argv = ["--model", str(tiny_model), "--enable-fault-tolerance", "--enable-tokenizer-info-endpoint"]
    argv += ["--profiler-config", PROFILER]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    app = build_app(args, supported_tasks=(*GENERATION_TASKS, *POOLING_TASKS, "render"))
    live = {(r.path, m) for r in enumerate_routes(app) for m in r.methods}
    assert len(live) > 60 and ("/invocations", "POST") in live and ("/v1/realtime", "WEBSOCKET") in live
    assert ("/server_info", "GET") in live and ("/fault_tolerance/apply", "POST") in live
    assert {("/start_profile", "POST"), ("/v1/load_lora_adapter", "POST"), ("/tokenizer_info", "GET")} <= live
    assert sorted(f"{m} {p}" for p, m in live if ROUTE_TABLE.lookup(p, m) is None) == []


@pytest.mark.parametrize(
    ("tenancy", "close", "expected"),
    [("single", "true", 403), ("multi", "false", 403), ("single", "false", "engine")],
    ids=["single-closed", "multi-always-closed", "control-single-open"],
)
def test_operator_routes_are_closed_without_an_admin_key(
    tiny_model: Path,
    plugin_config: Any,
    monkeypatch: pytest.MonkeyPatch,
    tenancy: str,
    close: str,
    expected: int | str,
) -> None:
    """vLLM has no admin key: ``close_privileged_endpoints`` refuses dev-mode routes even with one tenant.

    The control (single tenant, mitigation off) shows the route is served and reaches vLLM's handler.
    """
    plugin_config(
        f"profile: multi-tenant-baseline\ntenancy: {{mode: {tenancy}}}\n"
        f"mitigations: {{close_privileged_endpoints: {close}}}\n"
    )
    fresh_vllm_env(monkeypatch, VLLM_SERVER_DEV_MODE="1")
    app = _app(tiny_model, monkeypatch)
    resets: list[tuple[bool, bool]] = []

    class EngineStandIn:  # what the route would call: no engine runs behind this app
        async def reset_prefix_cache(self, running: bool, external: bool) -> bool:
            resets.append((running, external))
            return True

    app.state.engine_client = EngineStandIn()
    headers = [(b"content-type", b"application/json"), (b"x-pccguard-tenant", b"alice")]
    status, body = asgi_call(app, "POST", "/reset_prefix_cache", headers, b"")
    if expected == "engine":
        assert (status, json.loads(body), resets) == (200, {"success": True}, [(False, False)])
    else:
        assert status == expected and resets == []
