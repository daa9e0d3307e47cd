"""End-to-end environment: vLLM on the CPU, no network, a generated tiny LLaMA served by the enclave.

The environment variables must be set before vLLM is imported anywhere, so
they are set at import time of this conftest, not in a fixture.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None
#: The engine and server tests need vLLM, the paged-enclave tests torch; the probe's statistics run anywhere.
collect_ignore_glob = ([] if HAVE_VLLM else ["test_engine_*.py", "test_serve*.py"]) + (
    [] if HAVE_TORCH else ["test_paged*.py"]
)

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

if HAVE_TORCH:
    # torch before regopy: loading regopy's native library first corrupts the heap once torch loads.
    import torch  # noqa: F401


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A servable 2-layer LLaMA (weights, trained tokenizer), generated locally."""
    from pccguard.enclave_runtime.tiny_model import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model", seed=0)


@pytest.fixture
def plugin_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Write a ``PCCGUARD_CONFIG`` file for this test and point the environment at it."""

    def write(text: str) -> Path:
        path = tmp_path / "pccguard.yaml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("PCCGUARD_CONFIG", str(path))
        return path

    yield write
