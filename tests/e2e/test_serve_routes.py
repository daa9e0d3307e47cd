"""Every route of a live ``vllm serve`` is tenant-bound: the acceptance scenario of tenant-bound routes.

One server with the plugin in multi-tenant mode, one without (the control),
each with every optional router of a generate model on (``--enable-scale-out``)
and a route added after start (:mod:`tests.e2e.late_route`). The routes are
read from the live app. For each route that carries a prompt:

* no tenant -> refused (control: served);
* a client-chosen ``cache_salt`` is never honoured: two tenants sending the
  same chosen salt share nothing (control: two clients with it share);
* tenant A on one route, tenant B on another -> 0 cached tokens, for every
  ordered pair of the routes that report cached tokens, while tenant A
  repeating on the second route hits (the positive control);
* the route added after start is refused beneath the routes, because nothing
  minted its salt (control: it serves and shares).

Each case's prompt is rendered once by vLLM's own chat renderer, so the
chat-shaped and the token-shaped routes send the same tokens (the control
shows every pair sharing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.vllm.routes import ROUTE_TABLE
from tests.e2e.late_route import LATE_PATH, ROUTES_FILE_ENV
from tests.e2e.server import Server, running_server
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

FLAGS = (
    "--enable-prompt-tokens-details",
    "--max-model-len",
    "1024",
    "--enable-scale-out",
    "--middleware",
    "tests.e2e.late_route.AddRouteAfterStart",
)
PLUGIN_ON = "profile: multi-tenant-baseline\nmodel: {weights: private, accelerator_trusted: false}\n"
PLUGIN_OFF = "enabled: false\n"
BLOCK = 16


@dataclass(frozen=True)
class Live:
    server: Server
    model: str
    routes: list[tuple[str, str]]

    def post(self, path: str, body: dict[str, Any], tenant: str | None) -> tuple[int, Any]:
        return post(self.server.base, path, body, tenant)

    def case(self, label: str, tenant: str | None) -> tuple[str, list[int]]:
        """A fresh prompt and its tokens as vLLM renders it as a chat."""
        text = case_text(label)
        body = {"model": self.model, "messages": [{"role": "user", "content": text}]}
        status, rendered = self.post("/v1/chat/completions/render", body, tenant)
        assert status == 200, rendered
        return text, list(rendered["token_ids"])

    def measured(self) -> list[Measured]:
        m = self.model

        def chat(text: str, ids: list[int]) -> dict[str, Any]:
            return {"model": m, "messages": [{"role": "user", "content": text}], "max_tokens": 1}

        def tokens(text: str, ids: list[int]) -> dict[str, Any]:
            return {"model": m, "prompt": ids, "max_tokens": 1}

        return [
            Measured("/v1/completions", tokens, completion_cached),
            Measured("/invocations", tokens, completion_cached),
            Measured(
                "/inference/v1/generate",
                lambda t, ids: {"model": m, "token_ids": ids, "sampling_params": {"max_tokens": 1}},
                completion_cached,
            ),
            Measured("/v1/chat/completions", chat, completion_cached),
            Measured(
                "/v1/responses",
                lambda t, ids: {"model": m, "input": t, "max_output_tokens": 1},
                lambda a: int(a["usage"]["input_tokens_details"]["cached_tokens"]),
            ),
            Measured("/v1/messages", chat, anthropic_cached),
        ]


def _live(model: Path, root: Path, config: str, *, name_executor: bool) -> Iterator[Live]:
    env = {"PCCGUARD_ENCLAVE_PLAN": "all-enclave", ROUTES_FILE_ENV: str(root / "routes.json")}
    with running_server(model, root, config, *FLAGS, env=env, name_executor=name_executor) as server:
        listed = json.loads((root / "routes.json").read_text())
        routes = [(path, method) for path, methods in listed for method in methods]
        yield Live(server, str(model), [*routes, (LATE_PATH, "POST")])


@pytest.fixture(scope="module")
def plugin_on(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from _live(tiny_llama, tmp_path_factory.mktemp("routes-on"), PLUGIN_ON, name_executor=False)


@pytest.fixture(scope="module")
def plugin_off(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from _live(tiny_llama, tmp_path_factory.mktemp("routes-off"), PLUGIN_OFF, name_executor=True)


def _any_prompt_body(model: str) -> dict[str, Any]:
    """One body with every route's prompt field: the refusal must not depend on what the body says."""
    return {
        "model": model,
        "prompt": "hello",
        "messages": [{"role": "user", "content": "hello"}],
        "input": "hello",
        "token_ids": [5, 6, 7],
        "sampling_params": {"max_tokens": 1},
        "max_tokens": 1,
        "cache_salt": CHOSEN_SALT,
    }


# ---------------------------------------------------------------------- with the plugin


def test_live_app_serves_the_routes_the_scenario_measures(plugin_on: Live, plugin_off: Live) -> None:
    for live in (plugin_on, plugin_off):
        prompt = set(prompt_routes(live.routes, ROUTE_TABLE))
        assert {m.path for m in live.measured()} | {LATE_PATH} <= prompt
        assert {"/v1/chat/completions/batch", "/v1/decisions", "/generative_scoring"} <= prompt


def test_every_prompt_route_refuses_a_request_without_a_tenant(plugin_on: Live) -> None:
    answers = {
        path: plugin_on.post(path, _any_prompt_body(plugin_on.model), None)
        for path in prompt_routes(plugin_on.routes, ROUTE_TABLE)
        if path != LATE_PATH  # added after start: the boundary never saw it (next test)
    }
    assert {p: s for p, (s, a) in answers.items() if not refused_by_the_boundary(s, a)} == {}


def test_route_added_after_start_is_refused_beneath_the_routes(plugin_on: Live) -> None:
    body = {"model": plugin_on.model, "prompt": "hello", "max_tokens": 1, "cache_salt": CHOSEN_SALT}
    for tenant in (None, "alice"):
        status, answer = plugin_on.post(LATE_PATH, body, tenant)
        assert status == 400, answer
        assert "no cache salt minted by pccguard" in answer["error"]["message"]
    # Positive control: the same endpoint at its listed path serves the same tenant.
    assert plugin_on.post("/v1/completions", body, "alice")[0] == 200


def test_a_client_chosen_salt_is_never_honoured(plugin_on: Live) -> None:
    send = sender(plugin_on.server.base)
    for route in plugin_on.measured():
        text, ids = plugin_on.case(f"salt {route.path}", "alice")
        assert send(route, text, ids, "alice", CHOSEN_SALT)[0] == 200
        assert send(route, text, ids, None, CHOSEN_SALT)[0] == 401
        assert send(route, text, ids, f"bob-{route.path}", CHOSEN_SALT) == (200, 0), route.path
        status, hits = send(route, text, ids, "alice", "another-salt")
        assert status == 200 and hits is not None and hits >= BLOCK, route.path  # its own salt still hits


def test_no_route_pair_shares_across_tenants_and_the_same_tenant_hits(plugin_on: Live) -> None:
    pairs = route_pairs(
        sender(plugin_on.server.base),
        plugin_on.measured(),
        lambda label: plugin_on.case(label, "alice"),
        "alice",
        "mallory",
    )
    assert len(pairs) == 36
    assert {p: other for p, (other, _) in pairs.items() if other != 0} == {}
    assert {p: own for p, (_, own) in pairs.items() if own < BLOCK} == {}, "the same tenant must still hit"


# ---------------------------------------------------------------------- control: vLLM as shipped


def test_control_without_the_plugin_every_route_and_pair_shares(plugin_off: Live) -> None:
    send = sender(plugin_off.server.base)
    text, ids = plugin_off.case("served", None)
    served = {m.path: send(m, text, ids, None, None)[0] for m in plugin_off.measured()}
    assert {p: s for p, s in served.items() if s != 200} == {}  # no tenant needed anywhere
    pairs = route_pairs(
        send, plugin_off.measured(), lambda label: plugin_off.case(label, None), None, None, CHOSEN_SALT
    )
    assert {p: other for p, (other, _) in pairs.items() if other < BLOCK} == {}, "the copied salt shares"


def test_control_the_late_route_serves_and_shares(plugin_off: Live) -> None:
    body = {
        "model": plugin_off.model,
        "prompt": case_text("late"),
        "max_tokens": 1,
        "cache_salt": CHOSEN_SALT,
    }
    assert plugin_off.post(LATE_PATH, body, None)[0] == 200
    status, answer = plugin_off.post("/invocations", body, None)
    assert status == 200 and completion_cached(answer) >= BLOCK
