"""``allowlist_logs`` on vLLM's real API application: proven in its lifespan, or the start refused.

The allowlist is applied as the plan applies it in the API server
(``logs.apply_if_installed``), the hook is vLLM's adapter's own
(``hooks.install_frontend_check``), and the canary goes through vLLM's real
``RequestLogger`` into vLLM's own logger and handler. The control without the
allowlist reports the canary in what vLLM's handler received; a logger that
hands records to its handler around the hook refuses the start. The real
``vllm serve`` with request logging is ``tests/e2e/test_serve_scan.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.vllm.log_templates import REQUEST_LOGGER
from pccguard.adapters.vllm.runtime import hooks, logs
from pccguard.enforcement import log_allowlist
from pccguard.enforcement.patching import is_patched
from pccguard.enforcement.selftest import run_check
from tests.vllm.test_api_app import _app
from tests.vllm.test_boundary_selftest import _middleware, _start_up


@pytest.fixture
def applied() -> Iterator[None]:
    """The hook of vLLM's adapter, the allowlist applied as the plan applies it; taken off afterwards."""
    hooks.install_frontend_check()
    assert is_patched(log_allowlist.TARGET, log_allowlist.call_handlers)
    logs.apply_if_installed(("allowlist_logs",))
    try:
        yield
    finally:
        log_allowlist.deactivate()


def test_the_plan_applies_the_allowlist_only_when_it_installs_it() -> None:
    logs.apply_if_installed(("scrub_freed_kv",))
    assert log_allowlist.active() is None
    logs.apply_if_installed(("allowlist_logs",))
    try:
        assert log_allowlist.active() is not None
    finally:
        log_allowlist.deactivate()


def test_the_canary_through_vllms_request_logger_leaves_no_trace_and_is_proven_before_serving(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch, applied: None
) -> None:
    plugin_config("profile: multi-tenant-baseline\n")
    app = _app(tiny_model, monkeypatch)
    sent = _start_up(app)
    assert sent[0]["type"] == "lifespan.startup.complete", sent
    records = {r.mitigation: r for r in _middleware(app).proven.records}
    proof = records["allowlist_logs"]
    assert proof.passed, proof
    assert "RequestLogger.log_inputs, RequestLogger.log_outputs" in proof.checked
    assert "left no canary" in proof.checked


def test_the_control_without_the_allowlist_lets_the_canary_reach_vllms_handler() -> None:
    hooks.install_frontend_check()
    assert log_allowlist.active() is None
    record = run_check("allowlist_logs", logs.canary_check())
    assert not record.passed
    assert "the canary request reached a log handler" in record.found and "not applied" in record.found


class DirectLogger(logging.Logger):
    """Hands its records straight to its handlers, as some logging libraries' loggers do."""

    def callHandlers(self, record: logging.LogRecord) -> None:
        for handler in self.handlers:
            handler.handle(record)


class PromptFile(logging.Handler):
    """A log handler that records prompts: what an operator's file handler would keep."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.kept.append(record.getMessage())


def test_a_logger_that_hands_prompts_to_its_handler_refuses_the_start(
    tiny_model: Path, plugin_config: Any, monkeypatch: pytest.MonkeyPatch, applied: None
) -> None:
    """Fault injection: vLLM's request logger replaced by one that delivers around the hook, to a prompt file."""
    import vllm.entrypoints.serve.utils.request_logger as module

    direct, kept = DirectLogger(REQUEST_LOGGER), PromptFile()
    direct.addHandler(kept)
    manager = logging.Logger.manager
    original = manager.loggerDict[REQUEST_LOGGER]
    monkeypatch.setitem(manager.loggerDict, REQUEST_LOGGER, direct)
    monkeypatch.setattr(module, "logger", direct)
    plugin_config("profile: multi-tenant-baseline\n")
    app = _app(tiny_model, monkeypatch)
    sent = _start_up(app)
    assert sent[0]["type"] == "lifespan.startup.failed", sent
    message = sent[0]["message"]
    assert "\n" not in message
    assert message.startswith("pccguard refuses to start vllm: self-test of allowlist_logs failed: ")
    assert "the canary request reached a log handler" in message
    assert any("pccguard-log-canary" in line for line in kept.kept)  # the leak it found
    assert manager.loggerDict[REQUEST_LOGGER] is direct and original is not direct
