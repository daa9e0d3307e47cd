"""Helpers shared by the SGLang tests: scenario processes, their environment, ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"
SCENARIO_TIMEOUT_S = 420


def scenario_env(plugin: bool, config: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PCCGUARD_", "SGLANG_PLUGINS"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    if plugin:
        env["SGLANG_PLUGINS"] = "pccguard"
        if config is not None:
            env["PCCGUARD_CONFIG"] = str(config)
    else:
        env["SGLANG_PLUGINS"] = "none"
    return env


def run_scenario(name: str, model: Path, plugin: bool, config: Path | None, *extra: str) -> dict[str, Any]:
    """Run ``scenarios/<name>.py MODEL plugin|none EXTRA...`` in a fresh process and return its JSON report."""
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS / f"{name}.py"), str(model), "plugin" if plugin else "none", *extra],
        cwd=SCENARIOS,
        env=scenario_env(plugin, config),
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise AssertionError(f"scenario {name} ({'plugin' if plugin else 'none'}) failed:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (SGLang stops its own child processes), SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
