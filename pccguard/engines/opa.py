"""A central OPA server, queried with ``opa-python-client``.

The server is expected to run the rulebook bundle that ``pccguard rules
bundle DIR`` writes (``.manifest`` with root ``pcc``, the Rego modules and
``data.json``). pccguard queries ``POST /v1/data/pcc/decision``; the answer is
validated like the embedded engine's. An unreachable server, an HTTP error, a
timeout or an undefined decision is an ``EngineError`` (exit 2 in the CLI,
refusal to start in a plugin).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import ConnectionsError

from pccguard.engines.base import DecisionDocument, validate_decision_document
from pccguard.errors import EngineError, UsageError


def parse_opa_url(url: str) -> tuple[str, int, bool]:
    """``http://host:8181`` → ``(host, port, tls)``; anything else is a usage error."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--opa-url must be http://HOST[:PORT] or https://HOST[:PORT], got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise UsageError(f"--opa-url must not carry a path, query or credentials: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 8181)
    except ValueError:
        raise UsageError(f"--opa-url has an invalid port: {url!r}") from None
    return parts.hostname, port, parts.scheme == "https"


class OpaServerEngine:
    """Evaluate ``data.pcc.decision`` on an OPA server over its REST API."""

    name = "opa"

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 5.0, retries: int = 1) -> None:
        host, port, tls = parse_opa_url(url)
        if timeout <= 0:
            raise UsageError("--opa-timeout must be positive")
        self.url = url
        self._client = OpaClient(host=host, port=port, ssl=tls, token=token, timeout=timeout, retries=retries)

    def evaluate(self, input_doc: dict[str, Any]) -> DecisionDocument:
        try:
            answer = self._client.query_rule(input_doc, "pcc", "decision")
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            detail = _server_message(exc.response)
            raise EngineError(f"OPA server {self.url} answered HTTP {status}{detail}") from None
        except requests.Timeout:
            raise EngineError(f"OPA server {self.url} did not answer in time") from None
        except (requests.ConnectionError, ConnectionsError):
            raise EngineError(f"OPA server {self.url} is unreachable") from None
        except (requests.RequestException, ValueError) as exc:
            raise EngineError(f"OPA server {self.url}: {type(exc).__name__}") from None
        if not isinstance(answer, dict) or "result" not in answer:
            raise EngineError(f"OPA server {self.url} returned no decision (is the pccguard bundle loaded?)")
        return validate_decision_document(answer["result"])

    def close(self) -> None:
        self._client.close_connection()


def _server_message(response: requests.Response | None) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {' '.join(str(message).split())[:200]}" if message else ""
