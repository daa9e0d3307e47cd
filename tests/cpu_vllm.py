"""vLLM on the CPU for the test groups that drive it (tests/vllm, tests/e2e).

Three things both groups need the same way:

* :func:`configure_environment` -- the CPU platform, no network, no usage
  stats, no inherited ``PCCGUARD_CONFIG``; called at import time of each
  group's conftest, because vLLM reads these when it is first imported;
* :func:`plugin_config` -- a fixture writing this test's ``PCCGUARD_CONFIG``;
* :func:`start_engine` and :func:`core_request` -- a real ``EngineCore`` built
  through ``EngineArgs.create_engine_config`` like ``vllm serve`` (so the
  pccguard plugin's hooks run), and requests for it.

vLLM is imported lazily, after the environment is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CPU_ENV = {
    "VLLM_TARGET_DEVICE": "cpu",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",
    "TOKENIZERS_PARALLELISM": "false",
}


def configure_environment() -> None:
    for name, value in CPU_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.pop("PCCGUARD_CONFIG", None)
    # torch before regopy: loading regopy's native library first corrupts the heap once torch loads.
    import torch  # noqa: F401


@pytest.fixture
def plugin_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Write a ``PCCGUARD_CONFIG`` file for this test and point the environment at it."""

    def write(text: str) -> Path:
        path = tmp_path / "pccguard.yaml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("PCCGUARD_CONFIG", str(path))
        return path

    yield write


def start_engine(model: Any, **args: Any) -> Any:
    """A real ``EngineCore`` for ``model``, configured the way ``vllm serve`` configures one.

    The executor is the class vLLM itself resolves from the configuration, so
    a plugin that selects another executor is honoured. Without a tokenizer
    unless ``skip_tokenizer_init=False`` (structured outputs need one).
    """
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.engine.core import EngineCore
    from vllm.v1.executor.abstract import Executor

    config = EngineArgs(**{"model": str(model), "skip_tokenizer_init": True, **args}).create_engine_config()
    return EngineCore(config, Executor.get_class(config), log_stats=False)


def core_request(
    req_id: str,
    tokens: list[int],
    *,
    max_tokens: int,
    salt: str | None = None,
    sampling: dict[str, Any] | None = None,
    **kw: Any,
) -> Any:
    """An ``EngineCoreRequest`` as the API server would send it (greedy, ``ignore_eos`` by default)."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.engine import EngineCoreRequest

    params = {"max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True, **(sampling or {})}
    return EngineCoreRequest(
        request_id=req_id,
        prompt_token_ids=list(tokens),
        mm_features=None,
        sampling_params=SamplingParams(**params),
        pooling_params=None,
        arrival_time=0.0,
        lora_request=None,
        cache_salt=salt,
        data_parallel_rank=None,
        **kw,
    )


def tenant_token(tenant: str) -> str:
    """The salt token pccguard's tenant boundary mints for ``tenant`` in this process (its key set is shared)."""
    from pccguard.enforcement.tenancy.salts import tenant_token as mint

    return mint(tenant)
