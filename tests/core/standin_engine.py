"""A stand-in for an LLM serving engine, for the probe and scan tests: real sockets on 127.0.0.1.

A few lines of ``http.server`` that speak the streamed completions API and
emulate a prefix cache (a fixed prefill delay per uncached prompt word, and
``usage.prompt_tokens_details.cached_tokens``), and optionally log each
prompt as an engine with request logging on does. It is not an engine: the
probe and the scanner are the things under test; the acceptance test against
``vllm serve`` is tests/e2e/test_serve_probe.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SECONDS_PER_UNCACHED_WORD = 0.0005
CACHE_BLOCK_WORDS = 8
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@dataclass
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str
    host: str | None
    authorization: str | None
    tenant: str | None


@dataclass
class StandInEngine:
    """A stand-in for an LLM serving engine: OpenAI-style streamed completions with an emulated prefix cache.

    ``mode`` is how the cache is keyed: ``shared`` (one cache for everyone,
    partitioned only by a client-chosen ``cache_salt``, as an engine without
    tenant isolation), ``per_tenant`` (keyed by the caller's API key and
    tenant header; a client salt is ignored), ``none`` (never caches), or
    ``redirect`` (answers every request with a redirect to ``redirect_to``).
    ``die_after`` makes it go away abruptly on that request, like a killed
    server: the request in flight is dropped and the port closes.
    """

    mode: str
    die_after: int | None = None
    #: Where the stand-in logs each prompt it receives, as an engine with request logging on does.
    prompt_log: Path | None = None
    redirect_to: str | None = None
    seen: list[Seen] = field(default_factory=list)
    _cache: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dead: threading.Event = field(default_factory=threading.Event)
    _kill_lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> StandInEngine:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                engine.handle(self)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_CONNECT = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        """Stop answering and close the port; requests in flight get no response."""
        with self._kill_lock:
            if self._dead.is_set() or self._server is None:
                return
            self._dead.set()
            self._server.shutdown()
            self._server.server_close()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.seen.append(
                Seen(
                    req.command,
                    req.path,
                    req.headers.get("Host"),
                    req.headers.get("Authorization"),
                    req.headers.get("x-pccguard-tenant"),
                )
            )
            count = len(self.seen)
        dying = self.die_after is not None and count >= self.die_after
        if dying and count == self.die_after:
            threading.Thread(target=self.kill, daemon=True).start()
        if dying or self._dead.is_set():
            req.close_connection = True
            return  # no status line at all: the client sees the connection drop
        if self.mode == "redirect":
            req.send_response(307)
            req.send_header("Location", f"{self.redirect_to}{req.path}")
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        if req.command != "POST" or req.path != "/v1/completions":
            req.send_error(404)
            return
        body = json.loads(req.rfile.read(int(req.headers.get("Content-Length", "0"))))
        words = str(body["prompt"]).split()
        if self.prompt_log is not None:
            with self._lock, open(self.prompt_log, "a", encoding="utf-8") as log:
                log.write(f"INFO received request: prompt={body['prompt']!r}\n")
        cached = self._lookup_and_insert(req, body, words)
        time.sleep(SECONDS_PER_UNCACHED_WORD * (len(words) - cached))  # the "prefill"
        req.send_response(200)
        req.send_header("Content-Type", "text/event-stream")
        req.end_headers()
        usage = {
            "prompt_tokens": len(words),
            "completion_tokens": 1,
            "total_tokens": len(words) + 1,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        for chunk in ({"choices": [{"index": 0, "text": "x"}]}, {"choices": [], "usage": usage}):
            req.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        req.wfile.write(b"data: [DONE]\n\n")

    def _lookup_and_insert(self, req: BaseHTTPRequestHandler, body: dict[str, Any], words: list[str]) -> int:
        """Cached words: the longest run of whole blocks seen before under the same cache key."""
        if self.mode == "none":
            return 0
        if self.mode == "shared":
            namespace = str(body.get("cache_salt") or "")
        else:
            namespace = f"{req.headers.get('Authorization')}|{req.headers.get('x-pccguard-tenant')}"
        keys = [
            hashlib.sha256(f"{namespace}\0{' '.join(words[:end])}".encode()).hexdigest()
            for end in range(CACHE_BLOCK_WORDS, len(words) + 1, CACHE_BLOCK_WORDS)
        ]
        with self._lock:
            hits = 0
            for key in keys:
                if key not in self._cache:
                    break
                hits += 1
            self._cache.update(keys)
        return min(hits * CACHE_BLOCK_WORDS, len(words) - 1)  # the last word is always computed
