"""Attach pccguard to vLLM's startup path; called by the ``vllm.general_plugins`` entry point.

vLLM loads general plugins in every process (API server, engine core,
workers) and gives them no handle on the configuration, so the plugin wraps
the three places where it can act:

* ``EngineArgs.create_engine_config`` -- every entry point (``vllm serve``,
  ``LLM``, ``AsyncLLM``) resolves its ``VllmConfig`` there. The wrapper
  evaluates the resolved configuration, refuses the start on a deny (or on any
  pccguard error, fail-closed) and writes the plan into the configuration;
* the API server's middleware registration -- appends pccguard's tenant
  middleware to ``args.middleware`` (vLLM's ``--middleware`` mechanism);
* ``EngineCoreProc.run_busy_loop`` -- hands pccguard's scheduler a way to wake
  the idle engine loop when a cached prefix expires;
* ``EngineCore.preprocess_add_request`` -- admits the salt token the tenant
  boundary minted (or refuses the request) before vLLM hashes the prompt blocks.

Each wrapper is installed once per process (idempotent) and is a no-op for a
static check (``pccguard check --engine vllm``).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from typing import Any

from pccguard.adapters.vllm import static_check_active

#: A child of vLLM's own logger, so that pccguard's lines appear in the serve log with vLLM's format and level.
logger = logging.getLogger("vllm.pccguard")
_lock = threading.Lock()
_installed: set[str] = set()


def install_once(name: str) -> bool:
    """True the first time a hook called ``name`` is installed in this process (hooks are idempotent)."""
    with _lock:
        if name in _installed:
            return False
        _installed.add(name)
        return True


def _is_serve_process() -> bool:
    argv = sys.argv
    return len(argv) >= 2 and os.path.basename(argv[0]) in ("vllm", "main.py") and argv[1] == "serve"


def _serve_frontend_args() -> Any | None:
    """The ``vllm serve`` arguments of this process, when it is the API server (for frontend facts)."""
    if not _is_serve_process():
        return None
    from pccguard.adapters.vllm.parse import _parse

    # An error here propagates: without the server's arguments its routes, keys and logging are unknown,
    # and the caller refuses the start rather than judging a server with no routes.
    args, _, _, _ = _parse(sys.argv[2:])
    return args


def enforce_on_config(vllm_config: Any, engine_args: Any | None = None) -> Any:
    """Evaluate, refuse or configure: the body of the ``create_engine_config`` wrapper."""
    from pccguard.adapters.vllm.runtime.configure import apply_plan
    from pccguard.adapters.vllm.runtime.plan import decide
    from pccguard.errors import EnforcementError

    try:
        plan, decision = decide(vllm_config, engine_args=engine_args, frontend=_serve_frontend_args())
        apply_plan(vllm_config, plan)
        if decision.report.results:  # empty when fail_mode: open let an erroring check through
            logger.info(
                "pccguard: %d rules evaluated, start allowed; installed: %s%s",
                len(decision.report.results),
                ", ".join(plan.install) or "nothing",
                f"; enclave executor, plan {plan.enclave['plan']}" if plan.enclave else "",
            )
    except EnforcementError as exc:
        logger.error("%s", exc.one_line())
        raise
    except Exception as exc:  # fail-closed
        raise EnforcementError(
            f"pccguard refuses to start vllm: internal error (fail-closed): {type(exc).__name__}: {exc}"
        ) from exc
    return vllm_config


def install_config_hook() -> None:
    if not install_once("create_engine_config"):
        return
    from vllm.engine.arg_utils import EngineArgs

    original = EngineArgs.create_engine_config

    @functools.wraps(original)
    def create_engine_config(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = original(self, *args, **kwargs)
        if static_check_active() or not _plugin_enabled():
            return config
        return enforce_on_config(config, engine_args=self)

    EngineArgs.create_engine_config = create_engine_config  # type: ignore[method-assign]


def install_middleware_hook() -> None:
    if not _is_serve_process() or not install_once("middleware"):
        return
    try:
        from vllm.entrypoints.launchers import app as app_module
    except Exception:  # no API server in this installation or process
        return
    from pccguard.adapters.vllm.runtime.middleware import MIDDLEWARE_QUALNAME

    original = app_module.init_entrypoints_middleware

    @functools.wraps(original)
    def init_entrypoints_middleware(args: Any, *rest: Any, **kwargs: Any) -> Any:
        if _plugin_enabled() and MIDDLEWARE_QUALNAME not in list(args.middleware or []):
            args.middleware = [*list(args.middleware or []), MIDDLEWARE_QUALNAME]
        return original(args, *rest, **kwargs)

    app_module.init_entrypoints_middleware = init_entrypoints_middleware


def install_busy_loop_hook() -> None:
    if not install_once("busy_loop"):
        return
    from vllm.v1.engine import EngineCoreRequestType
    from vllm.v1.engine.core import DPEngineCoreProc, EngineCoreProc

    def wrap(cls: Any) -> None:
        original = cls.__dict__["run_busy_loop"]

        @functools.wraps(original)
        def run_busy_loop(self: Any, *args: Any, **kwargs: Any) -> Any:
            scheduler = getattr(self, "scheduler", None)
            if hasattr(scheduler, "pccguard_set_waker"):
                queue = self.input_queue
                scheduler.pccguard_set_waker(lambda: queue.put_nowait((EngineCoreRequestType.WAKEUP, None)))
            return original(self, *args, **kwargs)

        cls.run_busy_loop = run_busy_loop

    for cls in (EngineCoreProc, DPEngineCoreProc):  # the data-parallel loop is its own method
        if "run_busy_loop" in cls.__dict__:
            wrap(cls)


def install_presalt_hook() -> None:
    """Admit each request's salt where it enters the engine core, before vLLM hashes its blocks.

    ``EngineCore.preprocess_add_request`` turns the wire request into a
    ``Request`` (whose constructor hashes the prompt blocks). The scheduler's
    salt gate opens the token the tenant boundary minted and puts the bare
    salt in its place, so the blocks are hashed once, already salted. A request
    without a valid token -- from a route the boundary never saw, or sent to the
    engine core directly -- is refused here with a ``VLLMValidationError``,
    which vLLM turns into that request's error (HTTP 400) and nothing else.
    """
    if not install_once("presalt"):
        return
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.core import EngineCore

    from pccguard.enforcement.tenancy.gate import refusal_message
    from pccguard.enforcement.tenancy.salts import TokenRefused

    original = EngineCore.preprocess_add_request

    @functools.wraps(original)
    def preprocess_add_request(self: Any, request: Any) -> Any:
        scheduler = getattr(self, "scheduler", None)
        gate = getattr(scheduler, "pccguard_salt_gate", None)
        if gate is None:
            return original(self, request)
        try:
            request.cache_salt = gate.admit(request.cache_salt)
        except TokenRefused as exc:
            scheduler.pccguard_count_refusal(exc.reason)
            raise VLLMValidationError(refusal_message(exc), parameter="cache_salt") from None
        built, wave = original(self, request)
        built._pccguard_salted = True
        return built, wave

    EngineCore.preprocess_add_request = preprocess_add_request  # type: ignore[method-assign]


def _plugin_enabled() -> bool:
    from pccguard.enforcement.config import load_plugin_config

    try:
        return load_plugin_config().enabled
    except Exception:
        return True  # an unreadable configuration must not switch enforcement off; decide() refuses


def install_all() -> None:
    from pccguard.adapters.vllm.runtime.enclave_requests import install_enclave_request_checks

    install_config_hook()
    install_middleware_hook()
    install_busy_loop_hook()
    install_presalt_hook()
    install_enclave_request_checks()
