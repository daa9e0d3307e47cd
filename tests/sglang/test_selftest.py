"""Start-time self-tests on SGLang: every installed mitigation proven on the live engine, or the start refused.

Each scenario (``scenarios/selftest.py``) runs SGLang's real ``Engine``,
``launch_server`` or storage objects on the CPU in a process of its own. With
the plugin the self-tests pass and report what they exercised; the same checks
on an engine without pccguard report the residue (the control); and one broken
mitigation at a time refuses the start with one line naming it.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sglang.support import SCENARIO_TIMEOUT_S, SCENARIOS, free_port, scenario_env

REFUSAL = re.compile(r"pccguard refuses to start sglang: self-test of (\S+) failed: [^\n]+")


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        self.report: dict[str, Any] | None = json.loads(lines[-1]) if lines else None
        self.reports = [json.loads(line) for line in lines]

    def refusals(self) -> list[str]:
        return sorted({m.group(0) for m in REFUSAL.finditer(self.output)})

    def require_report(self) -> dict[str, Any]:
        assert self.report is not None, self.output[-3000:]
        return self.report


def _run(model: Path, plugin: bool, config: Path | None, mode: str, fault: str = "none") -> Run:
    argv = [
        sys.executable,
        str(SCENARIOS / "selftest.py"),
        str(model),
        "plugin" if plugin else "none",
        mode,
        fault,
    ]
    if mode == "serve":
        argv.append(str(free_port()))
    proc = subprocess.run(
        argv,
        cwd=SCENARIOS,
        env=scenario_env(plugin, config),
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    return Run(proc)


@pytest.fixture(scope="module")
def run(tiny_model: Path, plugin_config: Path) -> Callable[..., Run]:
    cache: dict[tuple[str, bool, str], Run] = {}

    def get(mode: str, plugin: bool, fault: str = "none") -> Run:
        key = (mode, plugin, fault)
        if key not in cache:
            cache[key] = _run(tiny_model, plugin, plugin_config if plugin else None, mode, fault)
        return cache[key]

    return get


def _by_mitigation(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["mitigation"]: r for r in records}


# --------------------------------------------------------------------------- the engine's scheduler


def test_engine_scheduler_proves_its_mitigations_before_it_serves(run: Callable[..., Run]) -> None:
    report = run("engine", True).require_report()
    tests = report["selftests"]
    records = _by_mitigation(tests["records"])
    assert set(records) == {
        "cache_agnostic_scheduling",
        "prefix_cache_ttl",
        "scrub_freed_kv",
        "tenant_cache_salt",
    }
    assert all(r["passed"] for r in records.values()), records
    for name in ("scrub_freed_kv", "prefix_cache_ttl"):
        # The tiny model: 2 layers, a K and a V buffer each, one TP rank, on the CPU.
        assert (records[name]["blocks"], records[name]["layers"], records[name]["ranks"]) == (4, 4, 1)
        assert records[name]["device"] == "cpu"
    assert "free_kv_row_segments" in records["scrub_freed_kv"]["checked"]
    assert "lpm" in records["cache_agnostic_scheduling"]["checked"]
    assert tests["seconds"] <= tests["budget"]
    assert tests["engine_start_seconds"] > tests["seconds"]
    # The engine serves normally after its self-tests: a tenant's own prefix still hits.
    assert report["cached_first"] == 0 and report["cached_again"] > 0


def test_engine_control_without_the_plugin_reports_the_residue(run: Callable[..., Run]) -> None:
    report = run("engine", False).require_report()
    assert report["selftests"] is None  # nothing of pccguard ran in this engine
    control = _by_mitigation(report["control"])
    assert not any(r["passed"] for r in control.values()), control
    found = {name: r["found"] for name, r in control.items()}
    assert found["scrub_freed_kv"].startswith("canary still in 4 of 4 freed slots of KV buffer k_buffer[0]")
    assert "the prefix cache is shared" in found["tenant_cache_salt"]
    assert "8 of 8 tokens matched across tenants" in found["tenant_cache_salt"]
    assert "outlived the expiry" in found["prefix_cache_ttl"]
    assert (
        found["cache_agnostic_scheduling"]
        == "the scheduler's live policy is lpm, which orders by cache matches"
    )
    assert found["server_side_priority"] == "a client priority of 7 reached the scheduler as 7"
    # Positive control of the control: the engine itself served.
    assert report["cached_again"] > 0


@pytest.mark.parametrize(
    ("fault", "mitigation", "found"),
    [
        ("skip_layer", "scrub_freed_kv", "canary still in 4 of 4 freed slots of KV buffer v_buffer[1]"),
        ("salt_noop", "tenant_cache_salt", "one tenant's prompt gave two different radix-tree keys"),
    ],
)
def test_a_broken_scheduler_mitigation_refuses_the_start(
    run: Callable[..., Run], fault: str, mitigation: str, found: str
) -> None:
    assert (
        run("engine", True).require_report()["selftests"] is not None
    )  # positive control: unbroken, it starts
    broken = run("engine", True, fault)
    assert broken.returncode != 0 and broken.report is None, "the engine must not start"
    refusals = broken.refusals()
    assert len(refusals) == 1, broken.output[-3000:]
    assert mitigation in refusals[0] and found in refusals[0]


# --------------------------------------------------------------------------- the HTTP server


def test_http_server_proves_its_routes_closed_before_it_listens(run: Callable[..., Run]) -> None:
    report = run("serve", True).require_report()
    assert report["served"] is True
    records = _by_mitigation(report["selftests"])
    assert set(records) == {"allowlist_logs", "close_privileged_endpoints", "disable:runtime_updates"}
    assert all(r["passed"] for r in records.values()), records
    logs = records["allowlist_logs"]["checked"]
    assert "RequestLogger.log_received_request, RequestLogger.log_finished_request" in logs
    assert "left no canary" in logs
    assert re.search(
        r"all \d+ privileged routes enumerated from the live app answered 401/403/404 without the admin key",
        records["close_privileged_endpoints"]["checked"],
    )
    assert "with the admin key" in records["disable:runtime_updates"]["checked"]
    # The scheduler's records reached the HTTP server with its ready handshake.
    (scheduler,) = report["scheduler_selftests"]
    proven = {r["mitigation"] for r in scheduler["records"] if r["passed"]}
    assert {"scrub_freed_kv", "tenant_cache_salt", "prefix_cache_ttl", "server_side_priority"} <= proven
    assert report["seconds"] < 2.0


def test_http_control_without_the_plugin_every_privileged_route_is_open(run: Callable[..., Run]) -> None:
    report = run("serve", False).require_report()
    assert report["served"] is True and report["selftests"] is None
    control = _by_mitigation(report["control"])
    closed = control["close_privileged_endpoints"]
    assert not closed["passed"]
    routes = re.match(r"(\d+) of (\d+) privileged routes did not refuse", closed["found"])
    assert routes is not None and routes.group(1) == routes.group(2), closed["found"]
    assert "POST /flush_cache reached its endpoint" in closed["found"]
    assert not control["disable:runtime_updates"]["passed"]
    # SGLang's request log lets the canary through: the residue allowlist_logs exists to remove.
    logs = control["allowlist_logs"]
    assert not logs["passed"] and "the canary request reached a log handler" in logs["found"]


@pytest.mark.parametrize(
    ("fault", "found"),
    [
        ("open_route", "privileged routes did not refuse a caller without the admin key"),
        ("log_hook", "/configure_logging could turn on request logging"),
    ],
)
def test_a_broken_route_mitigation_refuses_the_start(run: Callable[..., Run], fault: str, found: str) -> None:
    assert run("serve", True).require_report()["served"] is True  # positive control
    broken = run("serve", True, fault)
    assert [r["served"] for r in broken.reports] == [False], broken.output[-4000:]
    message = broken.require_report()["message"]
    assert "\n" not in message
    assert message.startswith(
        "pccguard refuses to start sglang: self-test of close_privileged_endpoints failed: "
    )
    assert found in message


def test_a_logger_that_hands_prompts_to_its_handler_refuses_the_start(run: Callable[..., Run]) -> None:
    assert run("serve", True).require_report()["served"] is True  # positive control
    broken = run("serve", True, "prompt_logger")
    assert [r["served"] for r in broken.reports] == [False], broken.output[-4000:]
    message = broken.require_report()["message"]
    assert "\n" not in message
    assert message.startswith("pccguard refuses to start sglang: self-test of allowlist_logs failed: ")
    assert "the canary request reached a log handler" in message


# --------------------------------------------------------------------------- stores this CPU engine cannot run


def test_offload_backend_proven_sealed_and_the_file_backend_is_the_control(run: Callable[..., Run]) -> None:
    report = run("stores", False).require_report()
    assert report["sealed_class"] == "EncryptedHiCacheStorage"
    (sealed,) = report["offload"]
    assert sealed["passed"], sealed
    (plain,) = report["offload_control"]
    assert not plain["passed"]
    assert (
        plain["found"]
        == "the stored test page holds its canary in plaintext (bytes, token-ids-int32, token-ids-int64)"
    )
    assert report["offload_fault"] == (
        "pccguard refuses to start sglang: self-test of encrypt_offload failed: "
        "the stored test page holds its canary in plaintext (bytes, token-ids-int32, token-ids-int64)"
    )
    assert report["files_left"] == {"sealed": [], "file": [], "fault": []}, "the test page is cleaned up"


def test_spec_corpus_proven_partitioned_and_a_shared_corpus_is_the_control(run: Callable[..., Run]) -> None:
    report = run("stores", False).require_report()
    (routed,) = report["corpus"]
    assert routed["passed"], routed
    assert report["corpus_tenants_left"] == 0, "the test tenants' corpora are dropped"
    (shared,) = report["corpus_control"]
    assert shared["found"] == "tenant B was drafted tenant A's continuation from the NGRAM corpus"


# --------------------------------------------------------------------------- in-process pieces


def test_held_endpoints_answer_probes_without_running_them() -> None:
    from fastapi import FastAPI

    from pccguard.enforcement.asgi_probe import REACHED_ENDPOINT, endpoints_held, request

    def request_sync(app: Any, method: str, path: str) -> int:
        return asyncio.run(request(app, method, path)).status

    ran: list[str] = []
    app = FastAPI()

    @app.post("/flush")
    async def flush() -> dict[str, str]:
        ran.append("flush")
        return {"ok": "yes"}

    assert request_sync(app, "POST", "/flush") == 200 and ran == ["flush"]  # positive control: it runs
    with endpoints_held(app):
        assert request_sync(app, "POST", "/flush") == REACHED_ENDPOINT
    assert ran == ["flush"], "a held endpoint never runs"
    assert request_sync(app, "POST", "/flush") == 200 and len(ran) == 2  # released afterwards
