"""One HTTP request through an ASGI application, delivered as uvicorn delivers it.

The tests drive the real FastAPI/Starlette apps (vLLM's ``build_app``, the
tenant boundary in front of a small app) without a socket, so they can read
what reached the route and what went back.
"""

from __future__ import annotations

import asyncio
from typing import Any

Headers = list[tuple[bytes, bytes]]


def asgi_call(
    app: Any,
    method: str,
    path: str,
    headers: Headers,
    body: bytes | list[bytes] = b"",
    client: str = "127.0.0.1",
) -> tuple[int, bytes]:
    """``(status, response body)``; a list body arrives in several ``http.request`` messages."""
    chunks = body if isinstance(body, list) else [body]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": (client, 1),
        "server": ("test", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return int(start["status"]), b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )
