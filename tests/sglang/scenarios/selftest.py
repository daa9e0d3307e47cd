"""Scenario: pccguard's start-time self-tests on SGLang's real engine, server and stores.

``python selftest.py MODEL_DIR plugin|none MODE [FAULT] [PORT]``:

* ``engine`` -- SGLang's real ``Engine`` (lpm schedule, priority scheduling on). With the
  plugin the scheduler proves its mitigations before it reports ready, and the
  records come back in ``get_server_info()``; without it (the control) the same
  checks run in the scheduler after ``Scheduler.__init__`` and report the residue;
* ``serve`` -- SGLang's real ``launch_server`` (priority scheduling on, request logging on in
  full, and an admin key when the plugin is on):
  the HTTP server proves its route mitigations in its lifespan start-up; the control
  runs the same checks there on an app without pccguard;
* ``stores`` -- the HiCache L3 backend SGLang's own factory builds (pccguard's sealing
  one, and SGLang's ``HiCacheFile`` as the control) and the NGRAM corpus (pccguard's
  per-tenant router over SGLang's C++ ``NgramCorpus``, and a bare one as the control),
  which cannot run inside this CPU build's engine.

A FAULT breaks one mitigation the way a bug would, at import, so that it holds in
every process SGLang spawns (each re-imports this script before it loads plugins):
``skip_layer`` (the zeroer leaves the last KV buffer out), ``salt_noop`` (the ingress
salt hook does nothing), ``open_route`` (SGLang's auth middleware is never added),
``log_hook`` (the ``/configure_logging`` hook lets request logging through),
``prompt_logger`` (the request log's logger hands prompts to its handler around
pccguard's hook), ``plaintext`` (the offload sealer writes plaintext). A refused start prints the
refusal in the JSON report (HTTP server) or in the scheduler's log (engine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Any

from _common import CPU_ENGINE_KWARGS, cpu_engine, report, wait_healthy

MODE = sys.argv[3] if len(sys.argv) > 3 else "engine"
FAULT = sys.argv[4] if len(sys.argv) > 4 else "none"
PLUGIN = len(sys.argv) > 2 and sys.argv[2] == "plugin"
ADMIN_KEY = "selftest-admin-key-not-a-secret"
#: The scheduler mitigations the engine control checks (no HiCache or NGRAM on this engine).
CONTROL_SCHEDULER = (
    "cache_agnostic_scheduling",
    "prefix_cache_ttl",
    "scrub_freed_kv",
    "server_side_priority",
    "tenant_cache_salt",
)
ENGINE_KWARGS: dict[str, Any] = {"schedule_policy": "lpm"}
#: The server logs requests in full, so that ``allowlist_logs`` is installed (and the control logs them).
REQUEST_LOGGING = ("--log-requests", "--log-requests-level", "3")


def _noop_hook(*args: Any, **kwargs: Any) -> None:
    return None


def _replace_hook(module: Any, hook: Any) -> None:
    module.HOOKS[:] = [(t, _noop_hook if h is hook else h, k) for t, h, k in module.HOOKS]


def apply_fault(fault: str) -> None:
    """Break one mitigation before SGLang loads the plugin in this process."""
    if fault == "skip_layer":
        from pccguard.adapters.sglang.runtime import scrub

        every = scrub.kv_buffers
        scrub.kv_buffers = lambda pool: every(pool)[:-1]
    elif fault == "salt_noop":
        from pccguard.adapters.sglang.runtime import salt

        _replace_hook(salt, salt._before_generate)
    elif fault == "open_route":
        import sglang.srt.utils.auth as auth

        auth.add_api_key_middleware = lambda app, **kwargs: None
    elif fault == "log_hook":
        from pccguard.adapters.sglang.runtime import endpoints

        _replace_hook(endpoints, endpoints._before_configure_logging)
    elif fault == "prompt_logger":
        import logging

        class DirectLogger(logging.Logger):
            """Hands its records straight to its handlers, as some logging libraries' loggers do."""

            def callHandlers(self, record: logging.LogRecord) -> None:
                for handler in self.handlers:
                    handler.handle(record)

        # The logger SGLang's request logger writes to; SGLang adds its stdout handler to it at start.
        name = "sglang.srt.utils.request_logger.stdout"
        logging.Logger.manager.loggerDict[name] = DirectLogger(name)


def observe_scheduler_control() -> None:
    """Without the plugin: run the scheduler checks after ``Scheduler.__init__``; report them at the handshake."""
    from sglang.srt.managers import scheduler as module

    from pccguard.adapters.sglang.runtime.selftest import scheduler_checks
    from pccguard.enforcement.selftest import run_checks

    init, info = module.Scheduler.__init__, module.Scheduler.get_init_info

    def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        records = run_checks(scheduler_checks(self), CONTROL_SCHEDULER)
        self._pccguard_control = [r.model_dump(mode="json") for r in records]

    def reported_info(self: Any) -> dict[str, Any]:
        return {**info(self), "pccguard_control": getattr(self, "_pccguard_control", None)}

    module.Scheduler.__init__ = checked_init
    module.Scheduler.get_init_info = reported_info


apply_fault(FAULT)
if MODE == "engine" and not PLUGIN:
    observe_scheduler_control()


# --------------------------------------------------------------------------- engine


def run_engine(model: str) -> dict[str, Any]:
    from pccguard.adapters.sglang.runtime.salt import tenant_scope

    started = time.monotonic()
    engine = cpu_engine(model, random_seed=0, **ENGINE_KWARGS)
    wall = time.monotonic() - started
    try:
        info = engine.get_server_info()
        prompt = {"input_ids": [11, 12, 13, 14, 501, 502, 503, 504], "sampling_params": {"max_new_tokens": 1}}
        with tenant_scope("alice") if PLUGIN else contextlib.nullcontext():
            first = engine.generate(**prompt)["meta_info"]["cached_tokens"]
            again = engine.generate(**prompt)["meta_info"]["cached_tokens"]
    finally:
        engine.shutdown()
    return {
        "selftests": info.get("pccguard_selftests"),
        "control": info.get("pccguard_control"),
        "engine_wall_seconds": wall,
        "cached_first": first,
        "cached_again": again,
    }


# --------------------------------------------------------------------------- serve

CONTROL_HTTP: dict[str, Any] = {}


def _watch(port: int) -> None:
    from pccguard.adapters.sglang.runtime.state import STATE

    wait_healthy(port)
    outcome = STATE.selftests
    report(
        {
            "served": True,
            "selftests": [r.model_dump(mode="json") for r in outcome.records] if outcome else None,
            "summary": outcome.summary() if outcome else None,
            "seconds": outcome.seconds if outcome else None,
            "engine_start_seconds": STATE.engine_start_seconds,
            "scheduler_selftests": STATE.scheduler_selftests,
            "control": CONTROL_HTTP.get("records"),
            "audit": STATE.counters(),
        }
    )
    os.kill(os.getpid(), signal.SIGTERM)


class ControlAtStartup:
    """The control: pccguard's HTTP checks, run where the boundary runs them, on an app without pccguard."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "lifespan":
            await self.app(scope, receive, send)
            return
        from pccguard.adapters.sglang.runtime.selftest import HTTP_MITIGATIONS
        from pccguard.adapters.sglang.runtime.selftest_http import http_checks
        from pccguard.enforcement.selftest import run_checks_async

        async def reported(message: Any) -> None:
            if message.get("type") == "lifespan.startup.complete":
                checks = http_checks(scope["app"], None, None)
                records = await run_checks_async(checks, sorted(HTTP_MITIGATIONS))
                CONTROL_HTTP["records"] = [r.model_dump(mode="json") for r in records]
            await send(message)

        await self.app(scope, receive, reported)


def run_serve(model: str, port: int) -> None:
    from sglang.srt.entrypoints import http_server
    from sglang.srt.server_args import prepare_server_args
    from sglang.srt.utils import kill_process_tree

    if not PLUGIN:
        http_server.app.add_middleware(ControlAtStartup)
    key = ["--admin-api-key", ADMIN_KEY] if PLUGIN else []
    server_args = prepare_server_args(
        [
            "--model-path", model, "--device", "cpu", "--load-format", "dummy", "--skip-tokenizer-init",
            "--attention-backend", "torch_native", "--sampling-backend", "pytorch",
            "--model-impl", "transformers", "--mem-fraction-static", "0.05", "--disable-cuda-graph",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--enable-priority-scheduling", *REQUEST_LOGGING, *key,
        ]
    )  # fmt: skip
    threading.Thread(target=_watch, args=(port,), daemon=True).start()
    try:
        http_server.launch_server(server_args)
    except Exception as exc:  # the refusal
        report({"served": False, "error": type(exc).__name__, "message": str(exc)})
    finally:
        kill_process_tree(os.getpid(), include_parent=False)


# --------------------------------------------------------------------------- stores


def _storage_config(path: str, sealing: bool) -> Any:
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig

    extra: dict[str, Any] = {"file_storage_path": path}
    if sealing:
        extra.update(
            backend_name="pccguard-aesgcm",
            module_path="pccguard.adapters.sglang.runtime.hicache",
            class_name="EncryptedHiCacheStorage",
        )
    return HiCacheStorageConfig(
        tp_rank=0, tp_size=1, pp_rank=0, pp_size=1, attn_cp_rank=0, attn_cp_size=1, is_mla_model=False,
        enable_storage_metrics=False, is_page_first_layout=False, model_name="tiny", extra_config=extra,
    )  # fmt: skip


def _records(checks: dict[str, Any]) -> list[dict[str, Any]]:
    from pccguard.enforcement.selftest import run_checks

    return [r.model_dump(mode="json") for r in run_checks(checks, list(checks))]


def _refusal(mitigation: str, check: Any) -> str | None:
    from pccguard.adapters.sglang.runtime.state import STATE
    from pccguard.enforcement.selftest import require_verified
    from pccguard.errors import EnforcementError

    try:
        require_verified("sglang", {mitigation: check}, [mitigation], STATE.audit)
    except EnforcementError as exc:
        return str(exc)
    return None


def run_stores() -> dict[str, Any]:
    from sglang.srt.mem_cache.hicache_storage import HiCacheFile
    from sglang.srt.mem_cache.storage.backend_factory import StorageBackendFactory
    from sglang.srt.speculative.cpp_ngram.ngram_corpus import NgramCorpus

    from pccguard.adapters.sglang.runtime.ngram import TenantNgramCorpus
    from pccguard.adapters.sglang.runtime.selftest import prove_corpus_partitioned, prove_offload

    def corpus() -> Any:
        return NgramCorpus(
            max_trie_depth=8, min_bfs_breadth=1, max_bfs_breadth=4, draft_token_num=6, match_type="BFS",
            capacity=100000,
        )  # fmt: skip

    folders = {name: tempfile.mkdtemp(prefix=f"selftest-{name}-") for name in ("sealed", "file", "fault")}
    sealed = StorageBackendFactory.create_backend("dynamic", _storage_config(folders["sealed"], True), None)
    plain = HiCacheFile(_storage_config(folders["file"], False), file_path=folders["file"])
    broken = StorageBackendFactory.create_backend("dynamic", _storage_config(folders["fault"], True), None)
    broken.seal = lambda storage_key, plaintext: bytes(plaintext)  # the backend seals with an identity cipher
    router = TenantNgramCorpus(corpus, 6)
    return {
        "sealed_class": type(sealed).__name__,
        "offload": _records({"encrypt_offload": lambda: prove_offload(sealed)}),
        "offload_control": _records({"encrypt_offload": lambda: prove_offload(plain)}),
        "offload_fault": _refusal("encrypt_offload", lambda: prove_offload(broken)),
        "files_left": {name: sorted(os.listdir(path)) for name, path in folders.items()},
        "corpus": _records({"per_tenant_spec_corpus": lambda: prove_corpus_partitioned(router)}),
        "corpus_tenants_left": router.tenants(),
        "corpus_control": _records({"per_tenant_spec_corpus": lambda: prove_corpus_partitioned(corpus())}),
    }


def main() -> None:
    model = sys.argv[1]
    assert CPU_ENGINE_KWARGS["device"] == "cpu"
    if MODE == "engine":
        report(run_engine(model))
    elif MODE == "serve":
        run_serve(model, int(sys.argv[5]))
    elif MODE == "stores":
        report(run_stores())
    else:
        raise SystemExit(f"unknown mode {MODE!r}")


if __name__ == "__main__":
    main()
