"""OPA URLs and tokens never leak: not into messages, not over plain http off the machine.

Servers are real sockets: the OPA API emulator and small stubs on loopback,
and a bare listener on this machine's own non-loopback address, which must
never see a connection when a token would travel over plain http.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pccguard.errors import UsageError
from pccguard.policy.engines.opa import OpaServerEngine, is_loopback_host, redact_url
from tests.core.opa_api_server import OpaApiEmulator
from tests.core.support import MINIMAL_FACTS, assert_clean_error, run_cli

TOKEN = "tok-7f3a9c-very-secret"


@pytest.fixture
def facts(write) -> Path:
    return write("facts.yaml", MINIMAL_FACTS)


def _leaks(result, *secrets: str) -> list[str]:
    seen = result.stdout + result.stderr
    return [s for s in secrets if s in seen]


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("url", "secrets", "shown"),
    [
        ("http://adminuser:hunter2pass@127.0.0.1:9", ["adminuser", "hunter2pass"], "http://***@127.0.0.1:9"),
        ("http://adminuser@127.0.0.1:9", ["adminuser"], "http://***@127.0.0.1:9"),
        ("http://127.0.0.1:9/?token=" + TOKEN, [TOKEN, "token="], "http://127.0.0.1:9/?***"),
        ("http://127.0.0.1:9/v1/data?access_token=" + TOKEN, [TOKEN], "http://127.0.0.1:9/v1/data?***"),
        ("http://127.0.0.1:9/#" + TOKEN, [TOKEN], "http://127.0.0.1:9/#***"),
        ("adminuser:hunter2pass@127.0.0.1:9", ["adminuser", "hunter2pass"], "***@127.0.0.1:9"),
        ("ftp://adminuser:hunter2pass@127.0.0.1", ["adminuser", "hunter2pass"], "ftp://***@127.0.0.1"),
    ],
)
def test_url_secrets_are_not_echoed(facts: Path, url: str, secrets: list[str], shown: str):
    result = run_cli("check", facts, "--opa-url", url, env={"PCCGUARD_OPA_TOKEN": ""})
    assert_clean_error(result, "--opa-url", shown)
    assert _leaks(result, *secrets) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h:1/x?q=1#f", "http://***@h:1/x?***#***"),
        ("http://a:p@ss@h", "http://***@h"),
        ("https://opa.internal:8181", "https://opa.internal:8181"),
        ("http://[::1", "(an unparsable URL)"),
    ],
)
def test_redact_url(url: str, shown: str):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("::2", False),
        ("localhost.example.com", False),
        ("opa.internal", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool):
    assert is_loopback_host(host) is loopback


# --------------------------------------------------------------------------- token transport


def _own_non_loopback_address() -> str | None:
    """An address of this machine on a real interface, or ``None`` (no packet is sent to find it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect only picks the outgoing interface
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if is_loopback_host(address) else address


@pytest.fixture
def outside_listener() -> Iterator[tuple[str, list[bytes]]]:
    """A TCP listener on a non-loopback address; records whatever connects."""
    address = _own_non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback interface")
    server = socket.create_server((address, 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(65536))
                except OSError:
                    received.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    host, port = server.getsockname()[:2]
    try:
        yield f"http://{host}:{port}", received
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_token_is_not_sent_over_plain_http_off_the_machine(facts: Path, outside_listener):
    url, received = outside_listener
    result = run_cli("check", facts, "--opa-url", url, env={"PCCGUARD_OPA_TOKEN": TOKEN})
    assert_clean_error(result, "refusing to send the OPA bearer token over plain http", url)
    assert received == [], "no connection may be made"
    assert _leaks(result, TOKEN) == []


def test_custom_token_variable_is_refused_the_same_way(facts: Path):
    result = run_cli(
        "check",
        facts,
        "--opa-url",
        "http://opa.internal:8181",
        "--opa-token-env",
        "MY_OPA_TOKEN",
        env={"MY_OPA_TOKEN": TOKEN, "PCCGUARD_OPA_TOKEN": ""},
    )
    assert_clean_error(result, "plain http", "--opa-token-env")
    assert _leaks(result, TOKEN) == []


def test_without_a_token_plain_http_is_only_a_connection(facts: Path, outside_listener):
    """No token, nothing to protect: the request is made (and fails, the listener does not speak HTTP)."""
    url, received = outside_listener
    result = run_cli("check", facts, "--opa-url", url, "--opa-timeout", "2", env={"PCCGUARD_OPA_TOKEN": ""})
    assert result.returncode == 2 and "plain http" not in result.stderr
    assert received and b"Authorization" not in received[0]


def test_https_with_a_token_is_allowed_to_any_host():
    engine = OpaServerEngine("https://opa.internal:8181", token=TOKEN)
    engine.close()


def test_engine_refuses_before_any_client_exists():
    with pytest.raises(UsageError, match="plain http"):
        OpaServerEngine("http://10.1.2.3:8181", token=TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_token_over_plain_http_to_loopback_works(facts: Path, bundle: Path, host: str):
    with OpaApiEmulator(bundle, token=TOKEN) as opa:
        url = opa.url.replace("127.0.0.1", host)
        result = run_cli(
            "check", facts, "--format", "json", "--opa-url", url, env={"PCCGUARD_OPA_TOKEN": TOKEN}
        )
        assert opa.requests and opa.requests[0]["auth"] == f"Bearer {TOKEN}"
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["engine"] == "opa"
    assert _leaks(result, TOKEN) == []


def test_plain_http_token_bypasses_environment_proxies(facts: Path, bundle: Path):
    """An ``http_proxy`` would carry a loopback-only token off the machine; it must not be used."""
    dead_proxy = "http://127.0.0.1:9"
    proxies = {name: dead_proxy for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")}
    env = {**proxies, "no_proxy": "", "NO_PROXY": "", "PCCGUARD_OPA_TOKEN": TOKEN}
    with OpaApiEmulator(bundle, token=TOKEN) as opa:
        result = run_cli("check", facts, "--format", "json", "--opa-url", opa.url, env=env)
    assert result.returncode == 1, result.stderr
    assert _leaks(result, TOKEN) == []


class _EchoingServer:
    """Answers every request 400 with a message that repeats the Authorization header, as a bad proxy might."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.dumps(
                    {"message": f"rejected header {self.headers.get('Authorization')}"}
                ).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_token_echoed_by_the_server_is_masked(facts: Path):
    with _EchoingServer() as url:
        result = run_cli("check", facts, "--opa-url", url, env={"PCCGUARD_OPA_TOKEN": TOKEN})
    assert_clean_error(result, "HTTP 400", "rejected header Bearer ***")
    assert _leaks(result, TOKEN) == []
