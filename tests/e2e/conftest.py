"""End-to-end environment: vLLM on the CPU, no network, a generated tiny LLaMA served by the enclave.

The environment variables must be set before vLLM is imported anywhere, so
they are set at import time of this conftest, not in a fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cpu_vllm import configure_environment, plugin_config

configure_environment()

__all__ = ["plugin_config"]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A servable 2-layer LLaMA (weights, trained tokenizer), generated locally."""
    from pccguard.enclave_runtime.tiny_model import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model", seed=0)
