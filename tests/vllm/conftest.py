"""vLLM test environment: a CPU platform, no network, and a tiny local LLaMA (``config.json`` only).

The environment variables must be set before vLLM is imported anywhere, so
they are set at import time of this conftest, not in a fixture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

for _name, _value in {
    "VLLM_TARGET_DEVICE": "cpu",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)
os.environ.pop("PCCGUARD_CONFIG", None)

# torch before regopy: loading regopy's native library first corrupts the heap once torch loads.
import torch  # noqa: E402,F401


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer LLaMA described by ``config.json`` alone (the engine never loads weights in these tests)."""
    from transformers import LlamaConfig

    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    ).save_pretrained(path)
    return path


@pytest.fixture
def plugin_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[callable]:  # type: ignore[valid-type]
    """Write a ``PCCGUARD_CONFIG`` file for this test and point the environment at it."""

    def write(text: str) -> Path:
        path = tmp_path / "pccguard.yaml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("PCCGUARD_CONFIG", str(path))
        return path

    yield write
