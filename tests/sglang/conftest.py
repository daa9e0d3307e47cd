"""Fixtures for the SGLang adapter tests (real SGLang 0.5.23 on the CPU).

The root conftest leaves this folder out where SGLang is not installed;
``scripts/venv-sglang.sh`` builds the environment that has it.
Scenarios that patch SGLang run in their own processes, so a run "with the
plugin" and its positive control "without" never share patched code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sglang.support import run_scenario

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


@pytest.fixture(scope="session")
def scenario() -> Iterator[Any]:
    cache: dict[tuple[str, bool], dict[str, Any]] = {}

    def run(name: str, model: Path, plugin: bool, config: Path | None) -> dict[str, Any]:
        key = (name, plugin)
        if key not in cache:
            cache[key] = run_scenario(name, model, plugin, config)
        return cache[key]

    yield run
