"""Privileged routes on SGLang's real HTTP server, on loopback only, with bounded timeouts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sglang.support import free_port, scenario_env, stop

HOST = "127.0.0.1"
BOOT_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 30
ADMIN_KEY = "test-admin-key-not-a-secret"
CONTENT_LOGGING = {"log_requests": True, "log_requests_level": 3}


@dataclass
class Server:
    base: str
    dumps: Path
    proc: subprocess.Popen[bytes]

    def call(
        self, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> int:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET")
        request.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def _launch(model: Path, tmp: Path, plugin: bool, config: Path | None, *extra: str) -> Iterator[Server]:
    port = free_port()
    log = open(tmp / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sglang.launch_server",
            "--model-path",
            str(model),
            "--device",
            "cpu",
            "--load-format",
            "dummy",
            "--skip-tokenizer-init",
            "--attention-backend",
            "torch_native",
            "--sampling-backend",
            "pytorch",
            "--model-impl",
            "transformers",
            "--mem-fraction-static",
            "0.05",
            "--disable-cuda-graph",
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
        ],
        env=scenario_env(plugin, config),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(base=f"http://{HOST}:{port}", dumps=tmp / "dumps", proc=proc)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError((tmp / "server.log").read_text(errors="replace")[-3000:])
            try:
                if server.call("/health") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not become healthy in time")
            time.sleep(1.0)
        yield server
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def open_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _launch(tiny_model, tmp_path_factory.mktemp("srv-none"), False, None)


@pytest.fixture(scope="module")
def guarded_server(
    tiny_model: Path, plugin_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _launch(
        tiny_model, tmp_path_factory.mktemp("srv-plugin"), True, plugin_config, "--admin-api-key", ADMIN_KEY
    )


def _cached_tokens(server: Server, tenant: str, ids: list[int], salt: str | None = None) -> int:
    body: dict[str, Any] = {"input_ids": ids, "sampling_params": {"max_new_tokens": 1, "temperature": 0}}
    if salt is not None:
        body["cache_salt"] = salt
    request = urllib.request.Request(server.base + "/generate", data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("x-pccguard-tenant", tenant)
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        return int(json.loads(response.read())["meta_info"]["cached_tokens"])


def _generate(server: Server, tenant: str) -> int:
    body = {"input_ids": [11, 12, 13, 501, 502], "sampling_params": {"max_new_tokens": 2, "temperature": 0}}
    return server.call("/generate", body, {"x-pccguard-tenant": tenant})


def test_without_plugin_configure_logging_is_open(open_server: Server) -> None:
    # Positive control: anyone can turn on full I/O logging and request dumps.
    body = dict(CONTENT_LOGGING, dump_requests_folder=str(open_server.dumps), dump_requests_threshold=1)
    assert open_server.call("/configure_logging", body) == 200
    assert _generate(open_server, "A") == 200
    deadline = time.monotonic() + 20
    while not any(open_server.dumps.glob("**/*.pkl")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert any(open_server.dumps.glob("**/*.pkl")), "the request was dumped to disk"


def test_unauthenticated_configure_logging_refused(guarded_server: Server) -> None:
    body = dict(CONTENT_LOGGING, dump_requests_folder=str(guarded_server.dumps))
    assert guarded_server.call("/configure_logging", body) in (401, 403)


def test_admin_cannot_enable_content_logging(guarded_server: Server) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert guarded_server.call("/configure_logging", CONTENT_LOGGING, auth) == 403
    body = {"dump_requests_folder": str(guarded_server.dumps)}
    assert guarded_server.call("/configure_logging", body, auth) == 403
    assert _generate(guarded_server, "A") == 200
    assert not guarded_server.dumps.exists()


def test_admin_routes_need_the_admin_key(guarded_server: Server) -> None:
    assert guarded_server.call("/flush_cache", {}) in (401, 403)
    assert guarded_server.call("/flush_cache", {}, {"Authorization": "Bearer wrong"}) == 401
    assert guarded_server.call("/flush_cache", {}, {"Authorization": f"Bearer {ADMIN_KEY}"}) == 200


def test_weight_updates_refused_even_with_admin_key(guarded_server: Server) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert guarded_server.call("/update_weights_from_disk", {"model_path": "/nonexistent"}, auth) == 403


def test_inference_still_served(guarded_server: Server) -> None:
    assert _generate(guarded_server, "B") == 200


def test_http_tenants_are_isolated_by_header(guarded_server: Server) -> None:
    secret = [21, 22, 23, 24, 601, 602, 603, 604, 605]
    probe = [21, 22, 23, 24, 601, 602, 603, 999]
    assert _cached_tokens(guarded_server, "victim", secret, salt="shared") == 0
    assert _cached_tokens(guarded_server, "attacker", probe, salt="shared") == 0, "client salt is overridden"
    assert _cached_tokens(guarded_server, "victim", probe) == 7, "positive control: same tenant hits"
