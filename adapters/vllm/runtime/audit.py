"""The process-wide audit log of the vLLM runtime (one per process, shared by every hook)."""

from __future__ import annotations

import threading

from pccguard.enforcement.audit import AuditLog

_lock = threading.Lock()
_log: AuditLog | None = None


def audit_log() -> AuditLog:
    """The audit log of this process; created on first use so importing costs nothing."""
    global _log
    with _lock:
        if _log is None:
            _log = AuditLog("vllm")
        return _log


def replace_audit_log(log: AuditLog) -> AuditLog:
    """Install another log (tests collect events with an in-memory sink); returns the previous one."""
    global _log
    with _lock:
        previous = _log or AuditLog("vllm")
        _log = log
        return previous
