"""Fixtures for the SGLang adapter tests (real SGLang 0.5.23 on the CPU).

The whole folder is skipped when SGLang is not installed (the core test
environment); ``scripts/venv-sglang.sh`` builds the environment that has it.
Scenarios that patch SGLang run in their own processes, so a run "with the
plugin" and its positive control "without" never share patched code.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sglang", reason="SGLang tests need the .venv-sglang environment")

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"
SCENARIO_TIMEOUT_S = 420

#: A 2-layer LLaMA small enough for the CPU; weights are generated (load_format=dummy).
TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "torch_dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    (path / "config.json").write_text(json.dumps(TINY_LLAMA), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def plugin_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multi-tenant baseline: the strict profile refuses any engine whose TEE facts are unknown."""
    path = tmp_path_factory.mktemp("pccguard") / "config.yaml"
    path.write_text(
        "profile: multi-tenant-baseline\n"
        "tenancy:\n  mode: multi\n  identified_by: header\n  tenant_header: x-pccguard-tenant\n"
        "mitigations:\n  prefix_cache_ttl_seconds: 300\n",
        encoding="utf-8",
    )
    return path


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


def run_scenario(name: str, model: Path, plugin: bool, config: Path | None) -> dict[str, Any]:
    """Run ``scenarios/<name>.py`` in a fresh process and return its JSON report."""
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS / f"{name}.py"), str(model), "plugin" if plugin else "none"],
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


@pytest.fixture(scope="session")
def scenario() -> Iterator[Any]:
    cache: dict[tuple[str, bool], dict[str, Any]] = {}

    def run(name: str, model: Path, plugin: bool, config: Path | None) -> dict[str, Any]:
        key = (name, plugin)
        if key not in cache:
            cache[key] = run_scenario(name, model, plugin, config)
        return cache[key]

    yield run
