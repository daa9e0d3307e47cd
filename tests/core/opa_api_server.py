"""A loopback HTTP server speaking the OPA REST API, for tests only.

It is NOT a real OPA: no ``opa`` binary can be installed in this environment.
It loads a bundle directory written by ``pccguard rules bundle`` (``.manifest``,
``data.json``, Rego modules), evaluates ``POST /v1/data/<path>`` with the regopy
engine, and answers as OPA does (``{"result": ...}``, ``{}`` when undefined,
``{"code", "message"}`` on errors). It checks a bearer token when one is set.
Modes let a test make it misbehave: ``"error"`` answers 500, ``"undefined"``
answers ``{}``, ``"slow"`` sleeps past the client's timeout, ``"garbage"``
answers a non-JSON body.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from regopy import Interpreter


class OpaApiEmulator:
    def __init__(self, bundle_dir: Path, token: str | None = None, mode: str = "ok") -> None:
        manifest = json.loads((bundle_dir / ".manifest").read_text())
        assert manifest["roots"] == ["pcc"]
        self.modules = [(str(p), p.read_text()) for p in sorted(bundle_dir.rglob("*.rego"))]
        self.data = json.loads((bundle_dir / "data.json").read_text())
        self.token = token
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                emulator.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
                if emulator.token is not None:
                    given = self.headers.get("Authorization", "")
                    if not hmac.compare_digest(given, f"Bearer {emulator.token}"):
                        body = {"code": "unauthorized", "message": "missing or invalid bearer token"}
                        return self._reply(401, json.dumps(body).encode())
                if emulator.mode == "error":
                    return self._reply(500, b'{"code": "internal_error", "message": "boom"}')
                if emulator.mode == "undefined":
                    return self._reply(200, b"{}")
                if emulator.mode == "garbage":
                    return self._reply(200, b"<html>proxy error</html>", "text/html")
                if emulator.mode == "slow":
                    time.sleep(3)
                if not self.path.startswith("/v1/data/"):
                    return self._reply(404, b'{"code": "not_found"}')
                ref = "data." + self.path[len("/v1/data/") :].strip("/").replace("/", ".")
                result = emulator.evaluate(ref, payload.get("input"))
                return self._reply(200, json.dumps({} if result is None else {"result": result}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def evaluate(self, ref: str, input_doc: Any) -> Any:
        with self._lock:
            rego = Interpreter()
            rego.strict_built_in_errors = True
            rego.add_data(self.data)
            for name, source in self.modules:
                rego.add_module(name, source)
            rego.set_input(input_doc)
            output = rego.query(f"x := {ref}")
            if not output.ok():
                return None
            return json.loads(output.binding("x").json())

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OpaApiEmulator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
