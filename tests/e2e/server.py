"""Start ``vllm serve`` with the enclave executor on 127.0.0.1 and stop it, with bounded waits.

The server runs in its own process group so that stopping it also stops the
engine core, the enclave and the accelerator it started, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pccguard.enclave_runtime.vllm_executor import EXECUTOR_QUALNAME

STARTUP_TIMEOUT_S = 240.0
REQUEST_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(model: Path, port: int, *extra: str, name_executor: bool = True) -> list[str]:
    """``vllm serve`` on loopback; ``name_executor=False`` leaves choosing the executor to the plugin."""
    executor = ["--distributed-executor-backend", EXECUTOR_QUALNAME] if name_executor else []
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.cli.main",
        "serve",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *executor,
        "--max-model-len",
        "512",
        "--block-size",
        "16",
        "--enable-prefix-caching",
        *extra,
    ]


class Server:
    """A running ``vllm serve``; :meth:`post` sends JSON to it and returns the JSON answer."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"
        self.log = log

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
            return json.loads(resp.read())

    def stream(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
        """POST with ``"stream": true``; the server-sent event payloads in order, up to ``[DONE]``."""
        data = json.dumps({**body, "stream": True}).encode()
        req = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        events: list[Any] = []
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
            for raw in resp:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                if line[5:].strip() == "[DONE]":
                    return events
                events.append(json.loads(line[5:]))
        raise AssertionError("the stream ended without [DONE]")

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=REQUEST_TIMEOUT_S) as resp:
            return str(resp.read().decode("utf-8"))

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/v1/models", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])


@contextlib.contextmanager
def running_server(
    model: Path,
    root: Path,
    config: str,
    *extra: str,
    env: dict[str, str] | None = None,
    name_executor: bool = True,
) -> Iterator[Server]:
    """``vllm serve`` with ``config`` as its ``PCCGUARD_CONFIG`` (written to ``root``), logging to ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pccguard.yaml").write_text(config, encoding="utf-8")
    env = {"PCCGUARD_CONFIG": str(root / "pccguard.yaml"), **(env or {})}
    log = root / "serve.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(model, port, *extra, name_executor=name_executor),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    server = Server(proc, port, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.ready():
            if proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {proc.returncode}:\n{server.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"vllm serve not ready within {STARTUP_TIMEOUT_S:.0f}s:\n{server.tail()}")
            time.sleep(1.0)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
