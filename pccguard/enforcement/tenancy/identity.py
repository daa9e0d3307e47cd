"""Who is asking: the tenant of a request, identified the same way in both engines.

The tenant is the value of the configured header (set by an authenticating
gateway in front of the engine), or the tenant mapped from the SHA-256 digest of
the request's bearer key in the configured key file. Digests are compared in
constant time against every entry (no early exit), and the key file is
validated when the plugin starts: a malformed file refuses the start.

In-process calls (vLLM's ``LLM``, SGLang's ``Engine``) have no headers; code in
the serving process binds their tenant with :func:`tenant_scope`. The ingress
middleware binds the tenant of an HTTP request the same way, for the duration
of that request, so engine hooks beneath the routes read one place:
:func:`current_tenant`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pccguard.enforcement.config import TenancyConfig
from pccguard.errors import InputError
from pccguard.files.sourcefile import load_document

#: The tenant of single-tenant mode: every request belongs to it.
SINGLE_TENANT = "default"

_DIGEST_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("pccguard_tenant", default=None)

RawHeaders = Iterable[tuple[bytes, bytes]]


def current_tenant() -> str | None:
    """The tenant bound to the running request or in-process call, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def tenant_scope(tenant: str) -> Iterator[None]:
    """Bind ``tenant`` to the calls made inside this block (and the tasks they start).

    Only code running in the serving process can call this, so it is as trusted
    as the engine object itself; HTTP clients never reach it.
    """
    if not isinstance(tenant, str) or not tenant.strip():
        raise ValueError("tenant must be a non-empty string")
    token = _CURRENT.set(tenant)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def load_key_file(path: Path) -> list[tuple[bytes, str]]:
    """``[(sha256 digest of an API key, tenant), ...]`` from a YAML or JSON mapping; keys are never stored."""
    doc = load_document(path)
    data = doc.data
    if not isinstance(data, dict) or not data:
        raise InputError(
            "tenancy.api_keys_file must map SHA-256 hex digests of API keys to tenant ids", where=str(path)
        )
    entries: list[tuple[bytes, str]] = []
    for digest, tenant in data.items():
        line = doc.lines.get(str(digest))
        where = f"{path}:{line}" if line else str(path)
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise InputError("a key is not a SHA-256 hex digest (64 hex digits)", where=where)
        if not isinstance(tenant, str) or not tenant.strip():
            raise InputError("a tenant id must be a non-empty string", where=where)
        entries.append((bytes.fromhex(digest), tenant.strip()))
    return entries


class TenantResolver:
    """The tenant of an HTTP request from its raw ASGI headers, or ``None`` when it names none."""

    def __init__(self, tenancy: TenancyConfig) -> None:
        self.tenancy = tenancy
        self.header = tenancy.tenant_header.lower().encode("latin-1")
        self._digests: list[tuple[bytes, str]] = []
        if tenancy.mode == "multi" and tenancy.identified_by == "api_key":
            if tenancy.api_keys_file is None:
                raise InputError("tenancy.identified_by is api_key but tenancy.api_keys_file is not set")
            self._digests = load_key_file(Path(tenancy.api_keys_file))

    def __repr__(self) -> str:
        return f"TenantResolver(mode={self.tenancy.mode}, identified_by={self.tenancy.identified_by})"

    def tenant(self, headers: RawHeaders) -> str | None:
        if self.tenancy.mode == "single":
            return SINGLE_TENANT
        if self.tenancy.identified_by == "header":
            found = None
            for name, value in headers:
                if name.lower() == self.header:
                    if found is not None:  # two tenant headers: ambiguous, never guess
                        return None
                    found = value.decode("latin-1").strip()
            return found or None
        return self._tenant_from_key(headers)

    def _tenant_from_key(self, headers: RawHeaders) -> str | None:
        token = None
        for name, value in headers:
            if name.lower() == b"authorization":
                scheme, _, rest = value.partition(b" ")
                if scheme.lower() == b"bearer" and rest.strip():
                    token = rest.strip()
        if not token:
            return None
        digest = hashlib.sha256(token).digest()
        found = None
        for stored, tenant in self._digests:  # every entry: timing does not reveal the position
            if hmac.compare_digest(stored, digest):
                found = tenant
        return found
