"""Bounds and checks on the probe's parameters, shared by the command line and the audit itself.

They live in a module that imports only the standard library's URL parser, so
the command line can state and enforce them without loading the HTTP client,
and ``pccguard check`` does not pay for a probe it does not run.
"""

from __future__ import annotations

import urllib.parse

#: Hit probes (and as many controls) per section; the audit sends at most ``warmup + 12 * trials`` requests.
MAX_TRIALS = 1000
#: Fewer than two samples of a kind leave nothing to test.
MIN_TRIALS = 2
#: Prompt length in words: a few words are too short to span a cache block, many exceed context windows.
MIN_PROMPT_WORDS = 8
MAX_PROMPT_WORDS = 4096
#: Seconds per request: a bound on how long one unresponsive server can hold the audit.
MAX_TIMEOUT_S = 600.0
#: Longest API key or tenant id accepted (a longer value is almost certainly a mistake, e.g. a pasted file).
MAX_IDENTITY_CHARS = 4096


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the one address the probe talks to, or ``None`` when it can.

    Credentials are refused without echoing the URL (it would put them in an
    error message); a query or fragment would be silently mangled when the
    request path is appended, so it is refused rather than guessed at.
    """
    if not url or any(ch.isspace() or not 0x20 < ord(ch) < 0x7F for ch in url):
        return (
            "base URL must be a non-empty ASCII URL without spaces (write an international host in punycode)"
        )
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError:
        return "base URL is not a valid URL (check the host and port)"
    if parsed.username is not None or parsed.password is not None:
        return (
            "base URL must not carry credentials (user:password@); "
            "give API keys with --victim-key-env/--attacker-key-env"
        )
    if parsed.scheme not in ("http", "https"):
        scheme = parsed.scheme or "none"
        return f"base URL scheme must be http or https, not {scheme!r}"
    if not parsed.hostname:
        return "base URL has no host"
    if port == 0:
        return "base URL port must be between 1 and 65535"
    if parsed.query or parsed.fragment or url.endswith(("?", "#")):
        return "base URL must not have a query or fragment (give the path only, e.g. http://HOST:PORT/v1)"
    return None


def identity_value_problem(value: str) -> str | None:
    """Why an API key or tenant id cannot go into an HTTP header, or ``None``; never quotes the value."""
    if not value:
        return "is empty"
    if len(value) > MAX_IDENTITY_CHARS:
        return f"is longer than {MAX_IDENTITY_CHARS} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) >= 0x7F for ch in value):
        return "must be printable ASCII without spaces"
    return None
