"""An ASGI middleware for a test's ``vllm serve``: a prompt route that appears after the app has started.

vLLM loads it through ``--middleware``. Once the app's start-up completes (after
pccguard's boundary has enumerated and bound the routes), it adds
:data:`LATE_PATH` to the app's router: vLLM's own completions endpoint at a path
no route table lists, standing in for a route a new vLLM version adds. Just
before, it writes the live app's routes (as the boundary enumerates them) to
the file named by :data:`ROUTES_FILE_ENV`, so the test sees every route the
app serves, including those FastAPI's schema leaves out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pccguard.enforcement.tenancy.routes import enumerate_routes

LATE_PATH = "/v1/late/completions"
ROUTES_FILE_ENV = "PCCGUARD_TEST_ROUTES_FILE"

Message = MutableMapping[str, Any]


class AddRouteAfterStart:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def started(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                from vllm.entrypoints.openai.completion.api_router import create_completion

                app = scope["app"]
                routes = [[r.path, sorted(r.methods)] for r in enumerate_routes(app)]
                with open(os.environ[ROUTES_FILE_ENV], "w", encoding="utf-8") as out:
                    json.dump(routes, out)
                app.router.add_api_route(LATE_PATH, create_completion, methods=["POST"])
            await send(message)

        await self.app(scope, receive, started)
