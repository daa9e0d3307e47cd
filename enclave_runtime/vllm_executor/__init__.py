"""The enclave runtime as a vLLM ``Executor``: vLLM schedules, the enclave computes and holds the KV cache.

``EnclaveExecutor`` (in :mod:`.executor`) is what ``--distributed-executor-backend``
names. Imports are lazy: the enclave process imports only :mod:`.paged` and
:mod:`.server`, never vLLM.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXECUTOR_QUALNAME", "EnclaveExecutor", "PagedEnclave"]

EXECUTOR_QUALNAME = "pccguard.enclave_runtime.vllm_executor.executor.EnclaveExecutor"


def __getattr__(name: str) -> Any:
    if name == "EnclaveExecutor":
        from pccguard.enclave_runtime.vllm_executor.executor import EnclaveExecutor

        return EnclaveExecutor
    if name == "PagedEnclave":
        from pccguard.enclave_runtime.vllm_executor.client import PagedEnclave

        return PagedEnclave
    raise AttributeError(name)
