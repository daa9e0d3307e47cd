"""Refuse, at admission, the request parameters the enclave executor cannot honour.

With ``EnclaveExecutor`` the logits exist only in the enclave, so the enclave
samples (``pccguard.enclave_runtime.vllm_executor.sampler``): temperature,
top-k/top-p/min-p, the three penalties, seeds, logprobs, ``logit_bias``,
``allowed_token_ids``, bad words and ``min_tokens`` as vLLM does, and
structured outputs under the grammar bitmask the engine core sends with the
step. Some parameters it cannot honour -- prompt logprobs, custom logits
processors, thinking budgets, trace replay, watermarks, sampling masks -- and
ignoring them would hand the client an answer that silently breaks its
constraint.

vLLM 0.33 gives an executor no per-request validation hook, and an exception
in ``execute_model`` kills the engine core with every request in it. vLLM
refuses a single request cleanly in two places, and ``hooks`` wraps both with
the checks below (which act only where the configured executor is
``EnclaveExecutor``):

* ``InputProcessor._validate_params`` -- the frontend (API server or ``LLM``
  process) validates every request's ``SamplingParams`` before it leaves for
  the engine; a ``VLLMValidationError`` there is an HTTP 400 naming the
  parameter;
* ``EngineCore.preprocess_add_request`` -- the engine core's input thread turns
  a ``VLLMValidationError`` into that request's ``FinishReason.ERROR`` with a
  ``validation_error``, which the frontend raises as the same HTTP 400; the
  engine keeps running. This one sees every request, including those handed to
  the engine core directly, and knows the executor for certain.

The checks do not depend on pccguard's policy configuration: they describe
what the executor can do, so they apply whenever it serves.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("vllm.pccguard")


def refusal(params: Any, vllm_config: Any, *, watermarking: bool | None = None) -> tuple[str, str] | None:
    """``(parameter, message)`` when the enclave executor cannot serve a request with ``params``, else None.

    ``watermarking`` is the resolved value where the caller has it (the
    frontend resolves it during validation); otherwise the request's own.
    """
    from pccguard.enclave_runtime.vllm_executor.sampling_params import unsupported

    found = unsupported(params)
    if watermarking is None:
        watermarking = getattr(params, "watermarking", None) is True
    if watermarking:
        found.append(("watermarking", "the enclave executor does not watermark"))
    model_config = getattr(vllm_config, "model_config", None)
    if getattr(model_config, "return_sampling_mask", False):
        found.append(("return_sampling_mask", "the enclave executor does not return sampling masks"))
    custom = _custom_logits_processors(model_config)
    if custom:
        found.append(
            ("logits_processors", f"custom logits processors ({', '.join(custom)}) do not run in the enclave")
        )
    return _explain(*found[0]) if found else None


def _explain(name: str, reason: str) -> tuple[str, str]:
    return (
        name,
        f"{reason}; remove '{name}' from the request or serve this model without the enclave executor",
    )


def _custom_logits_processors(model_config: Any) -> list[str]:
    """The custom logits processors vLLM would load (``--logits-processors`` and installed plugins)."""
    if model_config is None:
        return []
    from vllm.v1.sample.logits_processor import cached_load_custom_logitsprocs

    configured = getattr(model_config, "logits_processors", None)
    classes = cached_load_custom_logitsprocs(tuple(configured) if configured is not None else None)
    return [getattr(c, "__qualname__", str(c)) for c in classes]


def uses_enclave_executor(vllm_config: Any) -> bool:
    """Whether ``vllm_config`` names ``EnclaveExecutor`` (or a subclass) as its executor backend.

    A backend name that does not resolve raises: the executor that serves is
    then unknown, and treating it as "not the enclave" would let requests
    through unchecked.
    """
    backend = getattr(getattr(vllm_config, "parallel_config", None), "distributed_executor_backend", None)
    if isinstance(backend, str) and "." in backend:
        from vllm.utils.import_utils import resolve_obj_by_qualname

        backend = resolve_obj_by_qualname(backend)
    return isinstance(backend, type) and _is_enclave_executor(backend)


def _is_enclave_executor(cls: type) -> bool:
    """By name along the MRO, so that checking never imports the executor where it is not in use."""
    from pccguard.enclave_runtime.vllm_executor import EXECUTOR_QUALNAME

    return any(f"{c.__module__}.{c.__qualname__}" == EXECUTOR_QUALNAME for c in cls.__mro__)


def _validation_error(problem: tuple[str, str]) -> Exception:
    from vllm.exceptions import VLLMValidationError

    name, message = problem
    error: Exception = VLLMValidationError(message, parameter=name)
    return error


def validate_params(original: Any, self: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
    """``InputProcessor._validate_params`` (an AROUND hook, see ``hooks``): refuse in the frontend, as an HTTP 400."""
    from vllm.sampling_params import SamplingParams

    enclave = self.__dict__.get("_pccguard_enclave")
    if enclave is None:
        enclave = self.__dict__["_pccguard_enclave"] = uses_enclave_executor(self.vllm_config)
    sampling = enclave and isinstance(params, SamplingParams)
    # Before vLLM's own checks, so that the parameter named is the one the enclave cannot honour.
    problem = refusal(params, self.vllm_config, watermarking=False) if sampling else None
    if problem is not None:
        raise _validation_error(problem)
    watermarking = original(self, params, *args, **kwargs)
    if sampling and watermarking:  # resolved by vLLM's checks: the request's own flag or the engine's
        raise _validation_error(_explain("watermarking", "the enclave executor does not watermark"))
    return watermarking


def check_engine_core_request(engine: Any, request: Any) -> None:
    """Refuse in the engine core, finishing only that request (called first by the one
    ``EngineCore.preprocess_add_request`` hook in ``hooks``)."""
    params = getattr(request, "sampling_params", None)
    if params is not None and _is_enclave_executor(type(getattr(engine, "model_executor", None))):
        problem = refusal(params, engine.vllm_config)
        if problem is not None:
            logger.info("request %s refused: %s", getattr(request, "request_id", "?"), problem[1])
            raise _validation_error(problem)


def install_enclave_request_checks() -> None:
    """Install both checks in this process (idempotent; each acts only for ``EnclaveExecutor``)."""
    from pccguard.adapters.vllm.runtime.hooks import install_engine_core_hooks, install_frontend_check

    install_frontend_check()
    install_engine_core_hooks()
