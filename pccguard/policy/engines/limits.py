"""Bounds on one policy evaluation: wall-clock time, address-space growth and input size.

A rule is code, and custom rules come from anywhere (``--rules DIR``): a loop over
``numbers.range(1, 30000000)`` or a facts file with 40,000 endpoints can keep
regopy busy for minutes and take gigabytes, and regopy cannot be interrupted from
Python. So the evaluation runs in a forked worker: the compiled bundle is
inherited (no recompilation, a fork costs milliseconds), the worker's address
space may grow by at most ``memory_mb``, and the parent kills it when
``timeout_s`` passes. A run past a bound is an ``EvalLimitError`` (one line
naming the limit and the flag that raises it; exit 2, never a report that could
pass); any other death of the worker is an ``EngineError``, which the evaluator
turns into ``error`` verdicts. Either way nothing passes.

Where ``fork`` is unavailable the evaluation runs in process, still with the size
check, and without the time and memory bounds.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pccguard.errors import EngineError, InputError, PccguardError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 4096
DEFAULT_MAX_INPUT_BYTES = 1024 * 1024

#: How each limit is raised, for the error message (CLI flag; the same names as keyword arguments).
TIMEOUT_HINT = "--eval-timeout SECONDS"
MEMORY_HINT = "--eval-memory MIB"
INPUT_HINT = "--max-facts-bytes BYTES"


class EvalLimitError(PccguardError):
    """An evaluation ran past a configured bound.

    Deliberately not an ``EngineError``: the evaluator turns those into a report
    of ``error`` verdicts, while a run past its limit is refused outright with
    one line naming the limit (exit 2 in the CLI, a refusal to start in a plugin).
    """


@dataclass(frozen=True)
class EvalLimits:
    """``0`` (or ``None``) disables a limit; the defaults bound every evaluation."""

    timeout_s: float | None = DEFAULT_TIMEOUT_S
    memory_mb: int | None = DEFAULT_MEMORY_MB
    max_input_bytes: int | None = DEFAULT_MAX_INPUT_BYTES

    def __post_init__(self) -> None:
        for name, hint in (
            ("timeout_s", TIMEOUT_HINT),
            ("memory_mb", MEMORY_HINT),
            ("max_input_bytes", INPUT_HINT),
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InputError(f"evaluation limit {hint.split()[0]} must not be negative, got {value:g}")

    @property
    def isolated(self) -> bool:
        """Whether a worker process is needed (a time or memory bound is set and fork exists)."""
        return bool(self.timeout_s or self.memory_mb) and hasattr(os, "fork")


UNLIMITED = EvalLimits(timeout_s=None, memory_mb=None, max_input_bytes=None)


def check_input_size(input_doc: dict[str, Any], limits: EvalLimits) -> None:
    """Refuse an input document over ``max_input_bytes`` before any rule sees it."""
    if not limits.max_input_bytes:
        return
    size = len(json.dumps(input_doc, separators=(",", ":")).encode("utf-8"))
    if size > limits.max_input_bytes:
        raise InputError(
            f"facts document is {size} bytes as policy input, over the limit of {limits.max_input_bytes} "
            f"bytes (raise it with {INPUT_HINT}, 0 for no limit)"
        )


def _address_space_bytes() -> int:
    """The current virtual size of this process (regopy and the libraries already map a lot)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _child(task: Callable[[], Any], write_fd: int, memory_mb: int | None) -> None:
    """In the worker: bound memory, run the task, send ``{"ok": value}`` or ``{"error": ...}``; never return."""
    status = 0
    try:
        # regopy's own last words ("terminate called after ...") would break the one-line error contract.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        faulthandler.disable()  # a test runner's handler would print a Python dump for regopy's abort
        if memory_mb:
            limit = _address_space_bytes() + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            payload: dict[str, Any] = {"ok": task()}
        except MemoryError:
            payload = {"memory": True}
        except EngineError as exc:
            payload = {"error": exc.message}
        except InputError as exc:
            payload = {"input_error": exc.message, "where": exc.where}
        except Exception as exc:  # reported to the parent as an engine error, fail-closed
            payload = {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(payload).encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(write_fd, view)
            view = view[written:]
    except BaseException:
        status = 3
    finally:
        os._exit(status)


def _read_until(read_fd: int, deadline: float | None) -> bytes | None:
    """Everything the worker writes, or ``None`` when the deadline passes first."""
    chunks: list[bytes] = []
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def run_limited(task: Callable[[], Any], limits: EvalLimits, *, before_fork: Callable[[], None]) -> Any:
    """``task()`` in a forked worker under ``limits``; its JSON-serialisable result, or ``EngineError``.

    ``before_fork`` runs in the parent just before forking (flush buffers that the
    child would otherwise write a second time).
    """
    read_fd, write_fd = os.pipe()
    before_fork()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the worker; its outcome is asserted through the parent
        os.close(read_fd)
        _child(task, write_fd, limits.memory_mb)
    os.close(write_fd)
    deadline = time.monotonic() + limits.timeout_s if limits.timeout_s else None
    try:
        data = _read_until(read_fd, deadline)
    finally:
        os.close(read_fd)
    if data is None:
        os.kill(pid, signal.SIGKILL)
    _, wait_status = os.waitpid(pid, 0)
    if data is None:
        raise EvalLimitError(
            f"policy evaluation exceeded the time limit of {limits.timeout_s:g} s "
            f"(raise it with {TIMEOUT_HINT}, 0 for no limit)"
        )
    payload = _decode(data)
    if payload is None:
        if limits.memory_mb:
            raise EvalLimitError(f"{_death_message(wait_status)}, most likely at {_memory_message(limits)}")
        raise EngineError(_death_message(wait_status))
    if "ok" in payload:
        return payload["ok"]
    if payload.get("memory"):
        raise EvalLimitError(f"policy evaluation ran out of memory at {_memory_message(limits)}")
    if "input_error" in payload:
        raise InputError(str(payload["input_error"]), where=payload.get("where"))
    raise EngineError(str(payload.get("error", "policy evaluation failed")))


def _decode(data: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(data) if data else None
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _memory_message(limits: EvalLimits) -> str:
    return (
        f"the memory limit of {limits.memory_mb} MiB for policy evaluation "
        f"(raise it with {MEMORY_HINT}, 0 for no limit)"
    )


def _death_message(wait_status: int) -> str:
    """Why the worker gave no answer: a signal (regopy's ``terminate`` is SIGABRT) or an exit status."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"policy evaluation crashed ({name})"
    return f"policy evaluation exited with status {os.WEXITSTATUS(wait_status)}"
