"""``allowlist_logs`` in SGLang: applied in every process that decides to install it, proven in the HTTP server.

The hook on ``logging.Logger.callHandlers`` goes through SGLang's
``HookRegistry`` with the others and passes records through until the decision
installs the mitigation (:func:`apply_if_installed`); then the core allowlist
(:mod:`pccguard.enforcement.log_allowlist`) decides, with SGLang's templates
(:mod:`pccguard.adapters.sglang.log_templates`) and the operator's. The
self-test runs in the HTTP server, where the tokenizer manager's request logger
writes: :func:`canary_check`.
"""

from __future__ import annotations

from typing import Any

from pccguard.enforcement import log_allowlist
from pccguard.enforcement.config import MitigationConfig
from pccguard.enforcement.selftest import Check

from ..log_templates import TEMPLATES
from .state import STATE

HOOKS = [(log_allowlist.TARGET, log_allowlist.call_handlers, "AROUND")]


def apply_if_installed(installed: frozenset[str], settings: MitigationConfig) -> None:
    if log_allowlist.MITIGATION in installed:
        log_allowlist.apply(TEMPLATES, settings, STATE.aggregate)


def request_logger() -> Any:
    """The live tokenizer manager's ``RequestLogger`` (the one every request is logged through)."""
    from sglang.srt.entrypoints.http_server import get_global_state

    return get_global_state().tokenizer_manager.request_logger


def canary_check(logger: Any | None = None) -> Check:
    """The canary through SGLang's ``RequestLogger``: a received request and its finished output."""

    def live() -> Any:
        return logger if logger is not None else request_logger()

    def received(canary: str) -> None:
        from sglang.srt.managers.io_struct import GenerateReqInput

        live().log_received_request(GenerateReqInput(text=canary, rid="pccguard-selftest"))

    def finished(canary: str) -> None:
        from sglang.srt.managers.io_struct import GenerateReqInput

        obj = GenerateReqInput(text=canary, rid="pccguard-selftest")
        out = {"text": canary, "meta_info": {"id": "pccguard-selftest", "e2e_latency": 0.0}}
        live().log_finished_request(obj, out)

    emitters = {
        "RequestLogger.log_received_request": received,
        "RequestLogger.log_finished_request": finished,
    }
    return log_allowlist.log_canary_check(emitters, lambda: [target.name for target in live().targets])
