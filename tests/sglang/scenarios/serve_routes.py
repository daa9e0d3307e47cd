"""Scenario server: SGLang's real ``launch_server`` on loopback, plus a route that appears after start.

``python serve_routes.py MODEL_DIR plugin|none PORT ROUTES_FILE [SERVER_ARG...]``. Once the
server answers ``/health`` (after pccguard's boundary has enumerated and bound
the routes), a watcher writes the live app's routes to ``ROUTES_FILE`` and then
adds :data:`LATE_PATH`: SGLang's own ``/generate`` endpoint at a path no route
table lists, standing in for a route a new SGLang version adds. The file's
appearance tells the test that both have happened. Arguments after
``ROUTES_FILE`` are passed on to ``launch_server`` (they come last, so they win).
"""

from __future__ import annotations

import json
import os
import sys
import threading

import torch  # noqa: F401  (before regopy; see pccguard.adapters.sglang.facts)

LATE_PATH = "/late/generate"


def _watch(port: int, routes_file: str) -> None:
    from _common import wait_healthy  # here: the tests import this module for LATE_PATH
    from sglang.srt.entrypoints.http_server import app, generate_request

    from pccguard.enforcement.tenancy.routes import enumerate_routes

    wait_healthy(port)
    routes = [[r.path, sorted(r.methods)] for r in enumerate_routes(app)]
    app.add_api_route(LATE_PATH, generate_request, methods=["POST"])
    tmp = routes_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(routes, out)
    os.replace(tmp, routes_file)


def main() -> None:
    model, mode, port, routes_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    extra = sys.argv[5:]
    assert mode in ("plugin", "none"), mode
    from sglang.srt.entrypoints.http_server import launch_server
    from sglang.srt.server_args import prepare_server_args

    server_args = prepare_server_args(
        [
            "--model-path", model, "--device", "cpu", "--load-format", "dummy",
            "--attention-backend", "torch_native", "--sampling-backend", "pytorch",
            "--model-impl", "transformers", "--mem-fraction-static", "0.05", "--disable-cuda-graph",
            "--enable-cache-report", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            *extra,
        ]
    )  # fmt: skip
    threading.Thread(target=_watch, args=(port, routes_file), daemon=True).start()
    launch_server(server_args)


if __name__ == "__main__":
    main()
