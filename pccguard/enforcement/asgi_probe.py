"""In-process HTTP requests to a live ASGI application, before it listens on any socket.

A start-time self-test of a route mitigation must ask the app that will serve
-- its middleware stack as built, the engine's own auth check, pccguard's
boundary -- what a client would get, and must do so before the first client
can connect. Both engines build their HTTP front on Starlette, so one caller
serves both: it delivers one request the way an ASGI server does (one
``http.request`` message, then ``http.disconnect``) and returns the response.

A probe scope carries :data:`PROBE_SCOPE_KEY`; a client cannot set ASGI scope
keys (only headers), so the probes can be told apart from traffic.

Inside :func:`endpoints_held`, a probe that gets through every middleware is
answered :data:`REACHED_ENDPOINT` at the app's router instead of running the
endpoint: the answer shows the route did not refuse, and a privileged
endpoint (flush the cache, start a profiler, pause generation) is never run
by a self-test, whatever the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

#: Statuses that show a route refused a caller: unauthenticated, forbidden, or not served at all.
REFUSED_STATUSES = frozenset({401, 403, 404})
#: Set (to ``True``) in the ASGI scope of every probe request.
PROBE_SCOPE_KEY = "pccguard.selftest_probe"
#: What a held router answers a probe that reached it: no middleware refused it (not an HTTP status).
REACHED_ENDPOINT = 299
#: The status of an :class:`Answer` that never came (the probe timed out; not an HTTP status).
NO_ANSWER = 0
#: How long one probe may take before the route counts as not refusing.
DEFAULT_TIMEOUT_S = 10.0

Headers = Iterable[tuple[bytes, bytes]]


class Answer(NamedTuple):
    status: int
    body: bytes

    def said(self) -> str:
        """The answer as a self-test's finding names it."""
        if self.status == NO_ANSWER:
            return "gave no answer"
        return "reached its endpoint" if self.status == REACHED_ENDPOINT else f"answered {self.status}"


class NoResponse(Exception):
    """The app finished without starting a response."""


def _scope(
    app: Any, method: str, path: str, headers: Headers, client: str, extra: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"pccguard-selftest"), *headers],
        "client": (client, 0),
        "server": ("pccguard-selftest", 80),
        "state": {},
        "app": app,
        PROBE_SCOPE_KEY: True,
        **extra,
    }


async def request(
    app: Any,
    method: str,
    path: str,
    *,
    headers: Headers = ((b"content-type", b"application/json"),),
    body: bytes = b"",
    client: str = "127.0.0.1",
    timeout: float = DEFAULT_TIMEOUT_S,
    extra_scope: Mapping[str, Any] | None = None,
) -> Answer:
    """What ``app`` answers one request without credentials, from loopback.

    ``TimeoutError`` past ``timeout``; ``NoResponse`` if it answered nothing.
    An error the app raises after it started a response leaves that response.
    """
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(timeout)  # the client stays connected until the probe gives up
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = _scope(app, method, path, headers, client, extra_scope or {})
    try:
        await asyncio.wait_for(app(scope, receive, send), timeout)
    except Exception:
        # Starlette re-raises a handler's error after answering 500: the client got that answer.
        if not any(m.get("type") == "http.response.start" for m in sent):
            raise
    start = next((m for m in sent if m.get("type") == "http.response.start"), None)
    if start is None:
        raise NoResponse(f"{method} {path}: the app sent no response")
    data = b"".join(bytes(m.get("body", b"")) for m in sent if m.get("type") == "http.response.body")
    return Answer(int(start["status"]), data)


@contextmanager
def endpoints_held(app: Any) -> Iterator[None]:
    """While open, probes that reach ``app``'s router (Starlette's) get :data:`REACHED_ENDPOINT`, unrun.

    Only probe scopes are held; anything else reaches the router as before.
    For use while the app does not serve yet (a self-test at start-up).
    """
    router = app.router
    inner = router.middleware_stack

    async def held(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not scope.get(PROBE_SCOPE_KEY):
            await inner(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": REACHED_ENDPOINT, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    router.middleware_stack = held
    try:
        yield
    finally:
        router.middleware_stack = inner
