"""``allowlist_logs`` in vLLM: applied in every process the plan installs it in, proven in the API server.

The hook on ``logging.Logger.callHandlers`` is in the adapter's hook table
(:mod:`.hooks`) and passes records through until the plan installs the
mitigation; then the core allowlist (:mod:`pccguard.enforcement.log_allowlist`)
decides, with vLLM's templates (:mod:`pccguard.adapters.vllm.log_templates`)
and the operator's. The self-test runs in the API server, where vLLM's
request logger writes: :func:`canary_check`.
"""

from __future__ import annotations

import threading

from pccguard.adapters.vllm.log_templates import REQUEST_LOGGER, TEMPLATES
from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.enforcement import log_allowlist
from pccguard.enforcement.audit import AuditAggregator
from pccguard.enforcement.config import load_plugin_config
from pccguard.enforcement.selftest import Check

_lock = threading.Lock()
_aggregate: AuditAggregator | None = None


def _aggregator() -> AuditAggregator:
    """Withheld records of this process, emitted at the shared audit rate (by a timer when nothing follows)."""
    global _aggregate
    with _lock:
        if _aggregate is None:
            _aggregate = AuditAggregator(audit_log, autoflush=True)  # an API server has no idle moment
        return _aggregate


def apply_if_installed(installed: tuple[str, ...]) -> None:
    """Apply the allowlist in this process when the plan installs it (the plugin configuration adds records)."""
    if log_allowlist.MITIGATION in installed:
        log_allowlist.apply(TEMPLATES, load_plugin_config().mitigations, _aggregator())


def _log_inputs(canary: str) -> None:
    from vllm.entrypoints.serve.utils.request_logger import RequestLogger
    from vllm.sampling_params import SamplingParams

    params = SamplingParams(max_tokens=1, stop=[canary])
    RequestLogger(max_log_len=None).log_inputs("pccguard-selftest", canary, [1, 2, 3], None, params, None)


def _log_outputs(canary: str) -> None:
    from vllm.entrypoints.serve.utils.request_logger import RequestLogger

    RequestLogger(max_log_len=None).log_outputs("pccguard-selftest", canary, [1], "stop")


def canary_check() -> Check:
    """The canary through vLLM's ``RequestLogger`` (inputs, with the canary as prompt and stop string; outputs)."""
    emitters = {"RequestLogger.log_inputs": _log_inputs, "RequestLogger.log_outputs": _log_outputs}
    return log_allowlist.log_canary_check(emitters, lambda: [REQUEST_LOGGER])
