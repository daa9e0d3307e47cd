"""The process-wide audit log of the vLLM runtime (one per process, shared by every hook).

Its records go to ``vllm.pccguard.audit``, a child of vLLM's own logger, so
they reach the handler vLLM configures (vLLM gives the root logger none) and
appear in the serve log in vLLM's format.
"""

from __future__ import annotations

import logging
import threading

from pccguard.enforcement.audit import AuditLog, logger_sink

#: Where the records go: under vLLM's logger, which has vLLM's handler.
AUDIT_LOGGER = "vllm.pccguard.audit"

_lock = threading.Lock()
_log: AuditLog | None = None


def audit_log() -> AuditLog:
    """The audit log of this process; created on first use so importing costs nothing."""
    global _log
    with _lock:
        if _log is None:
            _log = new_audit_log()
        return _log


def replace_audit_log(log: AuditLog) -> AuditLog:
    """Install another log (tests collect events with an in-memory sink); returns the previous one."""
    global _log
    with _lock:
        previous = _log or new_audit_log()
        _log = log
        return previous


def new_audit_log() -> AuditLog:
    return AuditLog("vllm", sinks=[logger_sink(logging.getLogger(AUDIT_LOGGER))])
