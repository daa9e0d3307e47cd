"""Enclave backends: how the host starts and talks to the trusted side.

``EnclaveBackend`` is the seam for real TEEs. The software backend implemented
here runs the enclave and the accelerator as two separate OS processes
(``spawn``: nothing of the host's memory is inherited) joined by pipes; the host
holds one pipe to the enclave, the enclave one pipe to the accelerator. A
Gramine-SGX backend would start the same ``enclave_main`` under
``gramine-sgx`` with the pipes as sockets; a TDX/SEV-SNP backend would run it in
a confidential VM (see the threat-model document).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from abc import ABC, abstractmethod
from multiprocessing.connection import Connection
from typing import Any

from pccguard.enclave_runtime.accelerator import accelerator_main
from pccguard.enclave_runtime.channel import Channel, ChannelClosed, ChannelTimeout
from pccguard.enclave_runtime.codec import Message, WireError
from pccguard.enclave_runtime.enclave import enclave_main
from pccguard.enclave_runtime.errors import EnclaveLost


class EnclaveBackend(ABC):
    """Start the trusted side, exchange messages with it, stop it."""

    name: str = "abstract"

    @abstractmethod
    def start(self, options: dict[str, Any], startup_timeout: float) -> Message:
        """Start the enclave (and its accelerator); return its first message (``ready`` or ``error``)."""

    @abstractmethod
    def send(self, msg: Message) -> None: ...

    @abstractmethod
    def recv(self, timeout: float) -> Message: ...

    @abstractmethod
    def close(self) -> None: ...

    def pids(self) -> dict[str, int | None]:
        return {}


class SoftwareEnclaveBackend(EnclaveBackend):
    """Enclave and accelerator as separate processes; no hardware isolation (see threat model)."""

    name = "software"

    def __init__(
        self, *, with_accelerator: bool = True, accelerator_options: dict[str, Any] | None = None
    ) -> None:
        self.with_accelerator = with_accelerator
        self.accelerator_options = dict(accelerator_options or {})
        self.ctx = mp.get_context("spawn")
        self.enclave: Any = None
        self.accelerator: Any = None
        self.channel: Channel | None = None

    #: The enclave process's entry point, called with (host end, accelerator end, options);
    #: a variant backend names its own.
    enclave_entry: staticmethod[[Connection, Connection | None, dict[str, Any]], None] = staticmethod(
        enclave_main
    )

    def start(self, options: dict[str, Any], startup_timeout: float) -> Message:
        self._spawn(options)
        return self.recv(startup_timeout)

    def _spawn(self, options: dict[str, Any]) -> None:
        """Start the accelerator and enclave processes and keep only the host's end of the pipe."""
        host_end, enclave_end = self.ctx.Pipe(duplex=True)
        accel_for_enclave = accel_end = None
        if self.with_accelerator:
            accel_for_enclave, accel_end = self.ctx.Pipe(duplex=True)
            self.accelerator = self.ctx.Process(
                target=accelerator_main,
                args=(accel_end, self.accelerator_options),
                name="pccguard-accelerator",
                daemon=True,
            )
            self.accelerator.start()
        self.enclave = self.ctx.Process(
            target=self.enclave_entry,
            args=(enclave_end, accel_for_enclave, options),
            name="pccguard-enclave",
            daemon=True,
        )
        self.enclave.start()
        # Drop the host's copies of the other processes' ends, so a dead peer reads as EOF.
        enclave_end.close()
        for end in (accel_for_enclave, accel_end):
            if end is not None:
                end.close()
        self.channel = Channel(host_end)

    def send(self, msg: Message) -> None:
        assert self.channel is not None
        try:
            self.channel.send(msg)
        except ChannelClosed as exc:
            raise EnclaveLost(f"enclave closed the channel ({exc})") from exc

    def recv(self, timeout: float) -> Message:
        assert self.channel is not None
        try:
            return self.channel.recv(timeout)
        except ChannelClosed as exc:
            raise EnclaveLost("enclave process exited") from exc
        except ChannelTimeout as exc:
            raise EnclaveLost(f"enclave did not answer within {timeout:.1f}s") from exc
        except WireError as exc:
            raise EnclaveLost(f"malformed message from the enclave: {exc}") from exc

    def pids(self) -> dict[str, int | None]:
        return {
            "enclave": getattr(self.enclave, "pid", None),
            "accelerator": getattr(self.accelerator, "pid", None),
        }

    def close(self) -> None:
        if self.channel is not None:
            with contextlib.suppress(ChannelClosed):
                self.channel.send(Message("shutdown"))
        for proc in (self.enclave, self.accelerator):
            if proc is None:
                continue
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        if self.channel is not None:
            self.channel.close()
            self.channel = None
