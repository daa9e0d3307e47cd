"""Every route of a live SGLang ``launch_server`` is tenant-bound: the acceptance scenario, for SGLang.

The same scenario as vLLM's (:mod:`tests.tenant_routes`), on SGLang's real HTTP
server (``scenarios/serve_routes.py``: ``launch_server`` plus a route added after
start), with the plugin in multi-tenant mode and without it (the control).
The model has a trained tokenizer so that the OpenAI, Anthropic, SageMaker and
Ollama routes serve; its weights are generated. Each case's chat is rendered
with the model's own chat template, so the chat-shaped and the token-shaped
routes send the same tokens (the control shows every pair sharing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.sglang.routes import ROUTE_TABLE
from pccguard.enforcement.guarantee_metrics import PATH
from tests.log_scan import guarantee_counters, scan_log_for_planted, wait_for_line
from tests.sglang.scenarios.serve_routes import LATE_PATH
from tests.sglang.support import SCENARIOS, free_port, scenario_env, stop
from tests.tenant_routes import (
    CHOSEN_SALT,
    Measured,
    anthropic_cached,
    case_text,
    completion_cached,
    post,
    prompt_routes,
    refused_by_the_boundary,
    route_pairs,
    sender,
)

BOOT_TIMEOUT_S = 300
#: SGLang's radix cache matches single tokens; the chat template's opening tokens are shared by every
#: prompt of one tenant, so a hit counts only beyond them.
OWN_HIT = 16
#: SGLang's request logging at its most verbose (inputs and outputs in full), and the level that shows it.
REQUEST_LOGGING = ("--log-requests", "--log-requests-level", "3", "--log-level", "info")
#: SGLang's Anthropic route has no ``cache_salt`` field: its requests never carry a client salt.
NO_CLIENT_SALT = "/v1/messages"


@dataclass(frozen=True)
class Live:
    base: str
    tokenizer: Any
    routes: list[tuple[str, str]]
    log: Path

    def post(self, path: str, body: dict[str, Any], tenant: str | None) -> tuple[int, Any]:
        return post(self.base, path, body, tenant)

    def case(self, label: str) -> tuple[str, list[int]]:
        text = case_text(label)
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        return text, list(self.tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def measured(self) -> list[Measured]:
        def chat(text: str, ids: list[int]) -> dict[str, Any]:
            return {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 1}

        return [
            Measured(
                "/generate",
                lambda t, ids: {"input_ids": ids, "sampling_params": {"max_new_tokens": 1}},
                lambda a: int(a["meta_info"]["cached_tokens"]),
            ),
            Measured(
                "/v1/completions",
                lambda t, ids: {"model": "m", "prompt": ids, "max_tokens": 1},
                completion_cached,
            ),
            Measured("/v1/chat/completions", chat, completion_cached),
            Measured("/invocations", chat, completion_cached),
            Measured("/v1/messages", chat, anthropic_cached),
        ]


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pccguard.enclave_runtime.tiny_model import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("chat-llama") / "model", seed=0)


def _live(model: Path, root: Path, plugin: bool, config: Path, *extra: str) -> Iterator[Live]:
    from transformers import AutoTokenizer

    port, routes_file = free_port(), root / "routes.json"
    with (root / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SCENARIOS / "serve_routes.py"), str(model), "plugin" if plugin else "none",
             str(port), str(routes_file), *extra],
            env=scenario_env(plugin, config), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while not routes_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((root / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        listed = json.loads(routes_file.read_text())
        routes = [(path, method) for path, methods in listed for method in methods]
        yield Live(
            f"http://127.0.0.1:{port}",
            AutoTokenizer.from_pretrained(model),
            [*routes, (LATE_PATH, "POST")],
            root / "server.log",
        )
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def plugin_on(
    chat_model: Path, plugin_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """Request logging as in the control, so ``allowlist_logs`` is installed; at log level info, pccguard's audit
    records reach the server's log (the scan's positive control)."""
    yield from _live(chat_model, tmp_path_factory.mktemp("routes-on"), True, plugin_config, *REQUEST_LOGGING)


@pytest.fixture(scope="module")
def plugin_off(
    chat_model: Path, plugin_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """SGLang as shipped, with request logging on at its most verbose (the log scan's control)."""
    root = tmp_path_factory.mktemp("routes-off")
    yield from _live(chat_model, root, False, plugin_config, *REQUEST_LOGGING)


def _any_prompt_body() -> dict[str, Any]:
    return {
        "model": "m",
        "text": "hello",
        "prompt": "hello",
        "messages": [{"role": "user", "content": "hello"}],
        "input": "hello",
        "max_tokens": 1,
        "cache_salt": CHOSEN_SALT,
    }


def test_live_app_serves_the_routes_the_scenario_measures(plugin_on: Live) -> None:
    prompt = set(prompt_routes(plugin_on.routes, ROUTE_TABLE))
    assert {m.path for m in plugin_on.measured()} | {LATE_PATH} <= prompt
    assert {"/v1/responses", "/encode", "/v1/embeddings", "/api/generate", "/vertex_generate"} <= prompt
    # The table lists every route the live app served at start: a version bump cannot add one unseen.
    unlisted = [f"{m} {p}" for p, m in plugin_on.routes if ROUTE_TABLE.lookup(p, m) is None]
    assert unlisted == [f"POST {LATE_PATH}"]


def test_every_prompt_route_refuses_a_request_without_a_tenant(plugin_on: Live) -> None:
    answers = {
        path: plugin_on.post(path, _any_prompt_body(), None)
        for path in prompt_routes(plugin_on.routes, ROUTE_TABLE)
        if path != LATE_PATH
    }
    assert {p: s for p, (s, a) in answers.items() if not refused_by_the_boundary(s, a)} == {}


def test_route_added_after_start_is_refused_beneath_the_routes(plugin_on: Live) -> None:
    body = {"input_ids": [5, 6, 7, 8], "sampling_params": {"max_new_tokens": 1}, "cache_salt": CHOSEN_SALT}
    for tenant in (None, "alice"):
        status, answer = plugin_on.post(LATE_PATH, body, tenant)
        assert status == 400, answer
        assert "no cache salt minted by pccguard" in json.dumps(answer)
    assert plugin_on.post("/generate", body, "alice")[0] == 200  # the same endpoint at its listed path


def test_a_client_chosen_salt_is_never_honoured(plugin_on: Live) -> None:
    send = sender(plugin_on.base)
    for route in plugin_on.measured():
        text, ids = plugin_on.case(f"salt {route.path}")
        assert send(route, text, ids, "alice", CHOSEN_SALT)[0] == 200
        assert send(route, text, ids, None, CHOSEN_SALT)[0] == 401
        assert send(route, text, ids, f"bob-{route.path}", CHOSEN_SALT) == (200, 0), route.path
        status, hits = send(route, text, ids, "alice", "another-salt")
        assert status == 200 and hits is not None and hits >= OWN_HIT, route.path


def test_no_route_pair_shares_across_tenants_and_the_same_tenant_hits(plugin_on: Live) -> None:
    pairs = route_pairs(sender(plugin_on.base), plugin_on.measured(), plugin_on.case, "alice", "mallory")
    assert len(pairs) == 25
    assert {p: other for p, (other, _) in pairs.items() if other != 0} == {}
    assert {p: own for p, (_, own) in pairs.items() if own < OWN_HIT} == {}, "the same tenant must still hit"


def test_control_without_the_plugin_every_route_and_pair_shares(plugin_off: Live) -> None:
    send = sender(plugin_off.base)
    pairs = route_pairs(send, plugin_off.measured(), plugin_off.case, None, None)
    assert {p: other for p, (other, _) in pairs.items() if other < OWN_HIT} == {}, "every pair shares"
    # Two clients with one chosen salt share, on every route that takes a client salt.
    for route in plugin_off.measured():
        if route.path == NO_CLIENT_SALT:
            continue
        text, ids = plugin_off.case(f"salt {route.path}")
        assert send(route, text, ids, None, CHOSEN_SALT)[0] == 200
        status, hits = send(route, text, ids, None, CHOSEN_SALT)
        assert status == 200 and hits is not None and hits >= OWN_HIT, route.path
    body = {"input_ids": plugin_off.case("late")[1], "sampling_params": {"max_new_tokens": 1}}
    assert plugin_off.post(LATE_PATH, body, None)[0] == 200
    status, answer = plugin_off.post("/generate", body, None)
    assert status == 200 and answer["meta_info"]["cached_tokens"] >= OWN_HIT


# --------------------------------------------------------------------------- request logs, scanned


def test_request_logging_keeps_the_planted_canary(plugin_off: Live, chat_model: Path, tmp_path: Path) -> None:
    """The control: SGLang's ``--log-requests`` writes the planted prompt into the server's log."""
    code, report = scan_log_for_planted(plugin_off.base, chat_model, tmp_path, plugin_off.log)
    assert code == 1 and report["outcome"] == "found", report
    assert "utf-8" in {f["encoding"] for f in report["findings"]}


def test_with_the_plugin_the_log_holds_audit_records_and_no_canary(
    plugin_on: Live, chat_model: Path, tmp_path: Path
) -> None:
    """With the same request logging as the control, the plugin's log (the allowlisted records, pccguard's audit
    records among them) holds no prompt; the requests' log records were withheld and counted."""
    code, report = scan_log_for_planted(plugin_on.base, chat_model, tmp_path, plugin_on.log)
    assert code == 0 and report["outcome"] == "clean", report
    # Withheld records leave as audit records at the shared audit rate (1 s): wait for the last ones.
    text = wait_for_line(plugin_on.log, '"reason": "sglang.srt.utils.request_logger.stdout"', timeout_s=5.0)
    assert '"kind": "' in text and '"engine": "sglang"' in text, (
        "positive control: audit records were written"
    )
    # pccguard's metrics route: the HTTP server's counters and the scheduler's, in Prometheus' format.
    with urllib.request.urlopen(plugin_on.base + PATH, timeout=30) as answer:
        totals = guarantee_counters(answer.read().decode("utf-8"))
    assert totals[("selftest_passed", "allowlist_logs")] == 1  # proven in the HTTP server
    assert totals[("selftest_passed", "scrub_freed_kv")] > 0  # proven in the scheduler, read across processes
    withheld = [line for line in text.splitlines() if '"kind": "log_withheld"' in line]
    assert any('"reason": "sglang.srt.utils.request_logger.stdout"' in line for line in withheld), (
        "the request log's records were withheld, and counted"
    )
