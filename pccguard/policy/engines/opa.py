"""A central OPA server, queried with ``opa-python-client``.

The server is expected to run the rulebook bundle that ``pccguard rules
bundle DIR`` writes (``.manifest`` with root ``pcc``, the Rego modules and
``data.json``). pccguard queries ``POST /v1/data/pcc/decision``; the answer is
validated like the embedded engine's. An unreachable server, an HTTP error, a
timeout or an undefined decision is an ``EngineError`` (exit 2 in the CLI,
refusal to start in a plugin).

Secrets: the bearer token comes from an environment variable, never from the
URL. A URL is shown in a message only through ``redact_url``, which masks the
userinfo, the query and the fragment, so a mistyped
``http://admin:pw@host`` or ``?token=...`` is not echoed to a terminal or a CI
log. The token is sent over ``https://``, or over plain ``http://`` only to a
loopback address (``127.0.0.0/8``, ``::1``, ``localhost``), where it never
leaves the machine; any other plain-http host is refused before a request is
made, and a plain-http request never goes through a proxy from the environment.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from opa_client import OpaClient
from opa_client.errors import ConnectionsError

from pccguard.errors import EngineError, UsageError
from pccguard.policy.engines.base import DecisionDocument, validate_decision_document


def _mask_userinfo(text: str) -> str:
    """``user:password@host`` → ``***@host``; the last ``@`` ends the userinfo, as in a URL."""
    return f"***@{text.rpartition('@')[2]}" if "@" in text else text


def redact_url(url: str) -> str:
    """``url`` safe to print: userinfo, query and fragment masked (``http://***@host:9/?***``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    scheme, netloc, path = parts.scheme, _mask_userinfo(parts.netloc), parts.path
    if not parts.netloc and "@" in path:  # ``admin:pw@host``: urlsplit reads "admin" as the scheme
        scheme, path = "", _mask_userinfo(path)
    return urlunsplit(
        (
            scheme,
            netloc,
            path,
            "***" if parts.query else "",
            "***" if parts.fragment else "",
        )
    )


def is_loopback_host(host: str) -> bool:
    """``localhost`` or an address in ``127.0.0.0/8`` / ``::1`` (also IPv4-mapped): traffic stays on this machine."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def parse_opa_url(url: str) -> tuple[str, int, bool]:
    """``http://host:8181`` → ``(host, port, tls)``; anything else is a usage error that never echoes secrets."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise UsageError(f"--opa-url is not a valid URL: {shown}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise UsageError(f"--opa-url must be http://HOST[:PORT] or https://HOST[:PORT], got {shown}")
    if "@" in parts.netloc:
        raise UsageError(
            f"--opa-url must not carry credentials (the token is read from --opa-token-env): {shown}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"--opa-url must not carry a path, query or fragment: {shown}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 8181)
    except ValueError:
        raise UsageError(f"--opa-url has an invalid port: {shown}") from None
    return hostname, port, parts.scheme == "https"


def check_token_transport(host: str, tls: bool, url: str) -> None:
    """A bearer token goes over TLS, or over plain http only to loopback; anywhere else it could be sniffed."""
    if not tls and not is_loopback_host(host):
        raise UsageError(
            f"refusing to send the OPA bearer token over plain http to {redact_url(url)}: "
            "use https://, a loopback address, or unset the variable that --opa-token-env names"
        )


class OpaServerEngine:
    """Evaluate ``data.pcc.decision`` on an OPA server over its REST API."""

    name = "opa"

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 5.0, retries: int = 1) -> None:
        host, port, tls = parse_opa_url(url)
        if timeout <= 0:
            raise UsageError("--opa-timeout must be positive")
        if token:
            check_token_transport(host, tls, url)
        self.url = redact_url(url)  # only ever shown; the client gets host and port
        self._token = token
        # OpaClient joins host and port itself, so an IPv6 literal needs its brackets back.
        client_host = f"[{host}]" if ":" in host else host
        self._client = OpaClient(
            host=client_host, port=port, ssl=tls, token=token, timeout=timeout, retries=retries
        )
        if token and not tls:
            _ignore_environment_proxies(self._client)

    def evaluate(self, input_doc: dict[str, Any]) -> DecisionDocument:
        try:
            answer = self._client.query_rule(input_doc, "pcc", "decision")
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            detail = _server_message(exc.response, self._token)
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


def _ignore_environment_proxies(client: OpaClient) -> None:
    """A token over plain http is allowed to loopback only; an ``http_proxy`` would carry it off the machine."""
    session = getattr(client, "_session", None)
    if isinstance(session, requests.Session):
        session.trust_env = False


def _server_message(response: requests.Response | None, token: str | None = None) -> str:
    """The server's own error message, short, and with our token masked should a proxy or server echo it."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if not message:
        return ""
    text = " ".join(str(message).split())
    if token:
        text = text.replace(token, "***")
    return f": {text[:200]}"
