"""vLLM test environment: a CPU platform, no network, and a tiny local LLaMA (``config.json`` only).

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
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer LLaMA described by ``config.json`` alone (the engine never loads weights in these tests)."""
    from pccguard.enclave_runtime.synthetic import describe_llama

    return describe_llama(tmp_path_factory.mktemp("tiny-llama"))
