"""A message channel over a ``multiprocessing`` connection, with deadlines and no pickle.

Every receive has a deadline, so a dead or stalled peer becomes an exception
(``ChannelClosed``/``ChannelTimeout``) instead of a hang. Payloads are
:mod:`.codec` frames sent with ``send_bytes``/``recv_bytes``.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

from pccguard.enclave_runtime.codec import Message, WireError, decode, encode

MAX_MESSAGE = 1 << 34


class ChannelClosed(ConnectionError):
    """The peer closed its end (process exit or crash)."""


class ChannelTimeout(TimeoutError):
    """No message arrived before the deadline."""


class Channel:
    """Send and receive :class:`Message` frames; counts bytes both ways."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.bytes_sent = 0
        self.bytes_received = 0

    def send(self, msg: Message) -> int:
        blob = encode(msg)
        try:
            self.conn.send_bytes(blob)
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ChannelClosed(f"peer closed the channel: {exc}") from exc
        self.bytes_sent += len(blob)
        return len(blob)

    def recv(self, timeout: float | None) -> Message:
        """The next message; ``timeout=None`` waits forever (only for a server loop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            ready = False
            while not ready:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = self.conn.poll(wait)
                if not ready and deadline is not None and time.monotonic() >= deadline:
                    break
            blob = self.conn.recv_bytes(MAX_MESSAGE) if ready else None
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ChannelClosed(f"peer closed the channel: {exc or type(exc).__name__}") from exc
        if blob is None:
            raise ChannelTimeout(f"no answer within {timeout:.1f}s")
        self.bytes_received += len(blob)
        try:
            return decode(blob)
        except WireError:
            raise
        except Exception as exc:  # a malformed frame must never crash the enclave loop obscurely
            raise WireError(f"malformed message: {type(exc).__name__}") from exc

    def request(self, msg: Message, timeout: float | None) -> Message:
        self.send(msg)
        return self.recv(timeout)

    def close(self) -> None:
        self.conn.close()
