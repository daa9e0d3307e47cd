"""One OpenAI-compatible base URL, streamed completions, time to first token; nothing else is contacted.

Why streaming: the first streamed chunk leaves the server when the prefill is
done, so its arrival time is the prefill time plus network and queueing,
which is exactly what a prefix-cache hit shortens.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class ProbeError(RuntimeError):
    """The server could not be reached or answered with an error (the audit stops, the report is partial)."""


@dataclass(frozen=True)
class Identity:
    """Who a request claims to be: an API key, a tenant header, or both."""

    name: str
    api_key: str | None = None
    tenant_header: str | None = None
    tenant: str | None = None

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        if self.tenant_header and self.tenant:
            out[self.tenant_header] = self.tenant
        return out


@dataclass(frozen=True)
class Observation:
    ttft_s: float
    cached_tokens: int | None
    prompt_tokens: int | None


class Client:
    """Completions against ``base_url`` only (the path is appended; redirects are refused)."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 30.0) -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base URL must be http(s)://host[:port][/path], got {base_url!r}")
        self.base = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.requests = 0
        self.opener = urllib.request.build_opener(_NoRedirect())

    def complete(self, identity: Identity, prompt: str, extra: dict[str, Any] | None = None) -> Observation:
        """One streamed completion of one token; returns TTFT and the reported cached tokens."""
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
                for raw in resp:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if ttft is None and chunk.get("choices"):
                        ttft = time.perf_counter() - start
                    if chunk.get("usage"):
                        usage = chunk["usage"]
        except urllib.error.HTTPError as exc:
            raise ProbeError(f"HTTP {exc.code} from the server") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ProbeError(f"request failed: {exc}") from exc
        if ttft is None:
            raise ProbeError("the stream carried no completion chunk")
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return Observation(ttft, int(cached) if cached is not None else None, usage.get("prompt_tokens"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would send the probe somewhere other than the URL it was given."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
