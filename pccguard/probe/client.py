"""One OpenAI-compatible base URL, streamed completions, time to first token; nothing else is contacted.

Why streaming: the first streamed chunk leaves the server when the prefill is
done, so its arrival time is the prefill time plus network and queueing,
which is exactly what a prefix-cache hit shortens.

Why no proxies and no redirects: the audit promises to contact only the URL
it was given; ``http_proxy`` in the environment or a redirect from the server
would send the identities' requests (and API keys) somewhere else.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from pccguard.probe.params import base_url_problem

#: A legitimate one-token stream is a few hundred bytes; these bound a misbehaving server.
_MAX_LINE_BYTES = 64 * 1024
_MAX_STREAM_BYTES = 1024 * 1024


class ProbeError(RuntimeError):
    """The server could not be reached or answered with an error (the audit stops, the report is partial)."""


@dataclass(frozen=True)
class Identity:
    """Who a request claims to be: an API key, a tenant header, or both.

    The key is left out of ``repr`` so that no log line or error message built
    from an identity can carry it.
    """

    name: str
    api_key: str | None = field(default=None, repr=False)
    tenant_header: str | None = None
    tenant: str | None = None

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        if self.tenant_header and self.tenant:
            out[self.tenant_header] = self.tenant
        return out

    def describe(self) -> dict[str, Any]:
        """What the report records about this identity: whether a key was sent, never the key."""
        return {
            "api_key": bool(self.api_key),
            "tenant_header": self.tenant_header if self.tenant else None,
            "tenant": self.tenant,
        }

    def redact(self, text: str) -> str:
        """``text`` with this identity's key replaced, for messages that quote what a library said."""
        return text.replace(self.api_key, "<redacted>") if self.api_key else text


@dataclass(frozen=True)
class Observation:
    ttft_s: float
    cached_tokens: int | None
    prompt_tokens: int | None


class Client:
    """Completions against ``base_url`` only (the path is appended; proxies and redirects are refused)."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 30.0) -> None:
        problem = base_url_problem(base_url)
        if problem is not None:
            raise ValueError(problem)
        self.base = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.requests = 0
        # An empty ProxyHandler overrides the one build_opener would make from http(s)_proxy.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    def complete(self, identity: Identity, prompt: str, extra: dict[str, Any] | None = None) -> Observation:
        """One streamed completion of one token; returns TTFT and the reported cached tokens.

        The whole request, not only each socket read, is bounded by the timeout:
        a server that trickles bytes must not hold the audit forever.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        body.update(extra or {})
        req = urllib.request.Request(
            self.base + "/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **identity.headers()},
            method="POST",
        )
        self.requests += 1
        start = time.perf_counter()
        ttft: float | None = None
        usage: dict[str, Any] = {}
        try:
            with self.opener.open(req, timeout=self.timeout_s) as resp:
                received = 0
                while True:
                    raw = resp.readline(_MAX_LINE_BYTES)
                    if not raw:
                        break
                    received += len(raw)
                    if received > _MAX_STREAM_BYTES:
                        raise ProbeError("the stream is larger than a one-token completion can be")
                    if time.perf_counter() - start > self.timeout_s:
                        raise ProbeError(f"the stream did not finish within {self.timeout_s:g} s")
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if not isinstance(chunk, dict):
                        continue
                    if ttft is None and chunk.get("choices"):
                        ttft = time.perf_counter() - start
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
        except urllib.error.HTTPError as exc:
            raise ProbeError(f"HTTP {exc.code} from the server") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            detail = identity.redact(" ".join(str(exc).split()) or type(exc).__name__)
            raise ProbeError(f"request failed: {detail}") from None
        if ttft is None:
            raise ProbeError("the stream carried no completion chunk")
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        prompt_tokens = usage.get("prompt_tokens")
        return Observation(
            ttft,
            cached if isinstance(cached, int) else None,
            prompt_tokens if isinstance(prompt_tokens, int) else None,
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would send the probe somewhere other than the URL it was given."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
