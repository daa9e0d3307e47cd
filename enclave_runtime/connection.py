"""The host's end of a running enclave: one request, one reply, a timeout, and a clean close.

Both host APIs -- :class:`~pccguard.enclave_runtime.executor.HybridExecutor`
(one request at a time) and the paged enclave a serving engine drives
(:class:`~pccguard.enclave_runtime.vllm_executor.client.PagedEnclave`) -- talk to
their enclave the same way; this is that way, once. An error reply becomes the
matching exception, so a lost accelerator or a failed integrity check is never
mistaken for an answer.
"""

from __future__ import annotations

from typing import Any, Self

from pccguard.enclave_runtime.backend import EnclaveBackend
from pccguard.enclave_runtime.codec import Message
from pccguard.enclave_runtime.errors import AcceleratorLost, EnclaveRuntimeError, IntegrityError


def expect(reply: Message, kind: str) -> Message:
    """``reply`` when it is of ``kind``; otherwise raise what its error code means."""
    if reply.kind == kind:
        return reply
    code = str(reply.meta.get("code", reply.kind))
    message = str(reply.meta.get("message", f"unexpected reply {reply.kind!r}"))
    if code == "accelerator_lost":
        raise AcceleratorLost(message)
    if code == "integrity":
        raise IntegrityError(message)
    raise EnclaveRuntimeError(f"{code}: {message}")


class EnclaveConnection:
    """A started backend; use as a context manager so the processes always stop."""

    backend: EnclaveBackend
    timeout_s: float
    closed: bool = False

    def call(self, msg: Message, kind: str, timeout_s: float | None = None) -> Message:
        """Send ``msg`` and return the reply of ``kind`` (raises on an error reply or a timeout)."""
        if self.closed:
            raise EnclaveRuntimeError("enclave is closed")
        self.backend.send(msg)
        return expect(self.backend.recv(self.timeout_s if timeout_s is None else timeout_s), kind)

    def pids(self) -> dict[str, int | None]:
        return self.backend.pids()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
