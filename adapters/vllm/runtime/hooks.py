"""Attach pccguard to vLLM's startup path; called by the ``vllm.general_plugins`` entry point.

vLLM loads general plugins in every process (API server, engine core,
workers) and gives them no handle on the configuration, so the plugin wraps
the places where it can act, each named once in :mod:`.targets` and installed
through ``pccguard.enforcement.patching``:

* ``EngineArgs.create_engine_config`` -- every entry point (``vllm serve``,
  ``LLM``, ``AsyncLLM``) resolves its ``VllmConfig`` there. The wrapper proves
  the frontend hooks took, evaluates the resolved configuration, refuses the
  start on a deny (or on any pccguard error, fail-closed) and writes the plan
  into the configuration;
* ``InputProcessor._validate_params`` -- refuses, as an HTTP 400, the request
  parameters the enclave executor cannot honour (:mod:`.enclave_requests`);
* the API server's middleware registration -- appends pccguard's tenant
  middleware to ``args.middleware`` (vLLM's ``--middleware`` mechanism);
* ``EngineCore.__init__`` and the last attribute it sets -- once vLLM has
  built the executor, the KV cache and pccguard's scheduler, and before the
  engine-core process reports ready, runs the start-time self-tests of every
  engine-core mitigation (:mod:`.selftest`); a failure refuses the start.
  The attribute hook is what proves an engine-core process started by
  ``spawn``, which loads the plugin from inside ``__init__``;
* ``EngineCoreProc.run_busy_loop`` -- hands pccguard's scheduler a way to wake
  the idle engine loop when a cached prefix expires;
* ``EngineCore.post_step`` -- samples free KV blocks for residue while the
  engine serves, at most once per interval (:mod:`.residue`);
* ``EngineCoreProc._reject_add_while_paused`` -- vLLM's refusal of new work,
  also given (503) once the sampler found residue and stopped admission;
* ``EngineCore.pccguard_counters`` -- added, not wrapped: the engine-core
  utility the API server calls for pccguard's metrics route;
* ``logging.Logger.callHandlers`` -- ``allowlist_logs`` (:mod:`.logs`): once the
  plan installs it, only allowlisted records reach a handler;
* ``EngineCore.preprocess_add_request`` -- one wrapper, two checks in this
  order: the enclave executor's parameter check, then the salt token the
  tenant boundary minted is admitted (or the request refused) before vLLM
  hashes the prompt blocks.

Installation is idempotent. The engine-core hooks are proven by pccguard's
scheduler when the engine core builds it (:func:`verify_engine_core`), the
frontend hooks when the configuration is resolved (:func:`verify_frontend`):
a target missing or not carrying its hook refuses the start. The hooks do
nothing during a static check (``pccguard check --engine vllm``).
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import version
from typing import Any

from pccguard.adapters.vllm import static_check_active
from pccguard.enforcement import log_allowlist
from pccguard.enforcement.patching import Hook, HookTable, install, verify

from . import enclave_requests, targets

#: A child of vLLM's own logger, so that pccguard's lines appear in the serve log with vLLM's format and level.
logger = logging.getLogger("vllm.pccguard")


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
    """Prove the frontend hooks, then evaluate, refuse or configure: the body of the ``create_engine_config`` hook."""
    from pccguard.adapters.vllm.runtime.configure import apply_plan
    from pccguard.adapters.vllm.runtime.logs import apply_if_installed
    from pccguard.adapters.vllm.runtime.plan import decide
    from pccguard.errors import EnforcementError

    try:
        verify_frontend()
        plan, decision = decide(vllm_config, engine_args=engine_args, frontend=_serve_frontend_args())
        apply_plan(vllm_config, plan)
        apply_if_installed(plan.install)
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


# ---------------------------------------------------------------------- the hooks


def _create_engine_config(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    config = original(self, *args, **kwargs)
    if static_check_active() or not _plugin_enabled():
        return config
    return enforce_on_config(config, engine_args=self)


def _init_middleware(original: Any, args: Any, *rest: Any, **kwargs: Any) -> Any:
    from pccguard.adapters.vllm.runtime.middleware import MIDDLEWARE_QUALNAME

    if _plugin_enabled() and MIDDLEWARE_QUALNAME not in list(args.middleware or []):
        args.middleware = [*list(args.middleware or []), MIDDLEWARE_QUALNAME]
    return original(args, *rest, **kwargs)


#: Where the ``__init__`` hook notes when the engine core's construction began (for the self-tests' budget).
_STARTED = "pccguard_init_started"


def _engine_core_init(original: Any, self: Any, *args: Any, **kwargs: Any) -> None:
    """Build the engine core as vLLM does, noting when it began; it is proven at the end (:func:`_engine_core_built`)."""
    import time

    self.__dict__[_STARTED] = time.perf_counter()
    original(self, *args, **kwargs)


def _engine_core_built(self: Any, _value: Any) -> None:
    """``EngineCore.__init__`` set its last attribute: prove the engine core before it reports ready."""
    if not static_check_active():
        prove_once(self)


def prove_once(engine_core: Any) -> None:
    """Run the engine core's self-tests unless they ran, then attach its residue sampler; refuse on any error.

    Runs inside ``EngineCore.__init__`` (:data:`.targets.ENGINE_CORE_BUILT`),
    so an engine-core process refuses before it tells the frontend it is
    ready, also when started by ``spawn``, where the plugin is loaded from
    inside that constructor. The time is measured against the construction
    when the ``__init__`` hook saw it begin, and otherwise against the age of
    the engine-core process (started for this engine core).
    """
    import time

    scheduler = getattr(engine_core, "scheduler", None)
    if getattr(scheduler, "pccguard_plan", None) is None or hasattr(scheduler, "pccguard_selftests"):
        return
    from pccguard.adapters.vllm.runtime import residue
    from pccguard.adapters.vllm.runtime.selftest import prove_engine_core
    from pccguard.enforcement.selftest import process_age_seconds
    from pccguard.errors import EnforcementError

    started = engine_core.__dict__.get(_STARTED)
    try:
        elapsed = process_age_seconds() if started is None else time.perf_counter() - started
        if prove_engine_core(engine_core, elapsed) is not None:
            residue.attach(engine_core)
    except EnforcementError as exc:
        logger.error("%s", exc.one_line())
        raise
    except Exception as exc:  # fail-closed
        raise EnforcementError(
            f"pccguard refuses to start vllm: internal error in the self-tests (fail-closed): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _run_busy_loop(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    scheduler: Any = getattr(self, "scheduler", None)
    if hasattr(scheduler, "pccguard_set_waker"):
        from vllm.v1.engine import EngineCoreRequestType

        queue = self.input_queue
        scheduler.pccguard_set_waker(lambda: queue.put_nowait((EngineCoreRequestType.WAKEUP, None)))
    return original(self, *args, **kwargs)


def _post_step(result: Any, self: Any, *args: Any, **kwargs: Any) -> None:
    """Sample free KV for residue when due (:mod:`.residue`); one clock read otherwise."""
    sampler = getattr(self, "pccguard_residue", None)
    if sampler is not None:
        from pccguard.adapters.vllm.runtime import residue

        residue.after_step(self, sampler)


def _reject_add_while_paused(original: Any, self: Any, request: Any) -> bool:
    """vLLM's refusal of new work, also given once residue sampling stopped admission (503, retryable)."""
    from pccguard.adapters.vllm.runtime import residue

    if not residue.refuses(self) or self.scheduler.has_request(request.request_id):
        return bool(original(self, request))
    from vllm.v1.engine import FinishReason

    self._send_finish_outputs_to_client(
        [request.request_id], request.client_index, FinishReason.ERROR, residue.refusal_error()
    )
    return True


def _preprocess_add_request(original: Any, self: Any, request: Any) -> Any:
    """Both admission checks of the engine core, in a fixed order, before vLLM builds the ``Request``.

    1. The enclave executor's parameter check (:mod:`.enclave_requests`): what
       the executor cannot honour is refused first, whatever the salt.
    2. The scheduler's salt gate opens the token the tenant boundary minted and
       puts the bare salt in its place, so the blocks are hashed once, already
       salted. A request without a valid token -- from a route the boundary
       never saw, or sent to the engine core directly -- is refused.

    Both refuse with a ``VLLMValidationError``, which vLLM turns into that
    request's error (HTTP 400) and nothing else.
    """
    enclave_requests.check_engine_core_request(self, request)
    scheduler: Any = getattr(self, "scheduler", None)
    gate = getattr(scheduler, "pccguard_salt_gate", None)
    if gate is None:
        return original(self, request)
    from vllm.exceptions import VLLMValidationError

    from pccguard.enforcement.tenancy.gate import refusal_message
    from pccguard.enforcement.tenancy.salts import TokenRefused

    try:
        request.cache_salt = gate.admit(request.cache_salt)
    except TokenRefused as exc:
        scheduler.pccguard_count_refusal(exc.reason)
        raise VLLMValidationError(refusal_message(exc), parameter="cache_salt") from None
    built, wave = original(self, request)
    built._pccguard_salted = True
    return built, wave


CONFIG = Hook(targets.CREATE_ENGINE_CONFIG, _create_engine_config, "AROUND")
VALIDATE_PARAMS = Hook(targets.VALIDATE_PARAMS, enclave_requests.validate_params, "AROUND")
MIDDLEWARE = Hook(targets.INIT_MIDDLEWARE, _init_middleware, "AROUND")
PREPROCESS = Hook(targets.PREPROCESS_ADD_REQUEST, _preprocess_add_request, "AROUND")
ENGINE_CORE_INIT = Hook(targets.ENGINE_CORE_INIT, _engine_core_init, "AROUND")
ENGINE_CORE_BUILT = Hook(targets.ENGINE_CORE_BUILT, _engine_core_built, "ON_SET")
BUSY_LOOPS = (
    Hook(targets.BUSY_LOOP, _run_busy_loop, "AROUND"),
    Hook(targets.DP_BUSY_LOOP, _run_busy_loop, "AROUND"),
)
POST_STEP = Hook(targets.POST_STEP, _post_step, "AFTER")
REJECT_ADD = Hook(targets.REJECT_ADD_WHILE_PAUSED, _reject_add_while_paused, "AROUND")


def _engine_core_counters(self: Any) -> dict[str, int]:
    """The audit counters of this engine core (emitted and pending), for pccguard's metrics route.

    An engine-core utility: the API server calls it by name
    (``call_utility_all_async``), once per engine core, for each scrape of
    ``/.well-known/pccguard/metrics`` (:mod:`pccguard.enforcement.guarantee_metrics`).
    """
    from pccguard.adapters.vllm.runtime.audit import audit_log

    aggregate = getattr(getattr(self, "scheduler", None), "pccguard_audit", None)
    return dict(aggregate.counters() if aggregate is not None else audit_log().counters())


COUNTERS = Hook(targets.ENGINE_CORE_COUNTERS, _engine_core_counters, "ADD")
#: ``allowlist_logs``: every process carries it, and it passes records through until the plan installs it.
LOG_RECORDS = Hook(log_allowlist.TARGET, log_allowlist.call_handlers, "AROUND")

ENGINE_CORE_HOOKS = (
    PREPROCESS,
    ENGINE_CORE_INIT,
    ENGINE_CORE_BUILT,
    *BUSY_LOOPS,
    POST_STEP,
    REJECT_ADD,
    LOG_RECORDS,
    COUNTERS,
)
#: Every hook of the vLLM adapter, pinned to the release :mod:`.targets` was read from.
TABLE = HookTable(
    engine="vllm",
    version=targets.VERSION,
    hooks=(CONFIG, VALIDATE_PARAMS, MIDDLEWARE, *ENGINE_CORE_HOOKS),
)


def frontend_hooks() -> tuple[Hook, ...]:
    """The hooks a frontend process must carry (the middleware only in the ``vllm serve`` API server)."""
    if _is_serve_process():
        return (CONFIG, VALIDATE_PARAMS, MIDDLEWARE, LOG_RECORDS)
    return (CONFIG, VALIDATE_PARAMS, LOG_RECORDS)


# ---------------------------------------------------------------------- install and prove


def _pinned() -> None:
    TABLE.require_version(version("vllm"))


def install_config_hook() -> None:
    _pinned()
    install(TABLE, (CONFIG,))


def install_middleware_hook() -> None:
    """Only in the API server: importing vLLM's application elsewhere would cost a FastAPI import for nothing."""
    if _is_serve_process():
        _pinned()
        install(TABLE, (MIDDLEWARE,))


def install_frontend_check() -> None:
    _pinned()
    install(TABLE, (VALIDATE_PARAMS, LOG_RECORDS))


def install_engine_core_hooks() -> None:
    _pinned()
    install(TABLE, ENGINE_CORE_HOOKS)


def verify_frontend() -> None:
    """Refuse the start unless this frontend process carries every frontend hook."""
    verify(TABLE, frontend_hooks())


def verify_engine_core() -> None:
    """Refuse the start unless this engine-core process carries every engine-core hook."""
    verify(TABLE, ENGINE_CORE_HOOKS)


def _plugin_enabled() -> bool:
    from pccguard.enforcement.config import load_plugin_config

    try:
        return load_plugin_config().enabled
    except Exception:
        return True  # an unreadable configuration must not switch enforcement off; decide() refuses


def install_all() -> None:
    """Install every hook this process can carry (idempotent)."""
    install_config_hook()
    install_frontend_check()
    install_middleware_hook()
    install_engine_core_hooks()
