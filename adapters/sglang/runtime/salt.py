"""``tenant_cache_salt``: the cache salt comes from the authenticated tenant, never the client.

SGLang 0.5.23 namespaces its radix tree, the scheduler's in-queue matching
tree, HiCache L3 keys and KV-event hashes by ``cache_salt`` — but the salt is
optional and chosen by the client, who can omit it or copy a victim's. At
ingress (``TokenizerManager.generate_request``, which every HTTP and in-process
route goes through) the plugin overwrites it with
``HMAC-SHA256(per-process key, tenant)``; from there SGLang carries it to every
tier. The scheduler re-checks the salt's form: a request that reached it
without a server salt (an ingress path this hook does not cover) gets a fresh
random salt and so shares nothing.

The tenant is the value of the configured header (set by an authenticating
gateway), or the tenant mapped from the SHA-256 of the request's bearer key,
or, for in-process ``Engine`` calls, the one bound with :func:`tenant_scope`.
A request with no tenant gets a per-request random salt.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pccguard.audit import AuditKind
from pccguard.errors import InputError

from . import targets
from .state import STATE, Enforcement

MITIGATION = "tenant_cache_salt"
PRIORITY_MITIGATION = "server_side_priority"
SALT_PREFIX = "pcc1-"
_SALT_HEX = 32

_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar("pccguard_sglang_tenant", default=None)


@contextlib.contextmanager
def tenant_scope(tenant: str) -> Iterator[None]:
    """Bind the tenant of in-process ``Engine`` calls made inside this block.

    Only code in the serving process can call this, so it is as trusted as the
    ``Engine`` object itself; HTTP requests never reach it.
    """
    if not tenant:
        raise ValueError("tenant must be a non-empty string")
    token = _TENANT.set(tenant)
    try:
        yield
    finally:
        _TENANT.reset(token)


def derive_salt(key: bytes, tenant: str) -> str:
    """Length-prefixed HMAC so that no two tenant names can produce the same input."""
    data = tenant.encode("utf-8")
    mac = hmac.new(key, len(data).to_bytes(4, "big") + data, hashlib.sha256).hexdigest()
    return SALT_PREFIX + mac[:_SALT_HEX]


_SALT_CACHE_MAX = 4096


def salt_for(enforcement: Enforcement, tenant: str) -> str:
    """``derive_salt`` memoised per process (the cache is as secret as the key beside it)."""
    cache = enforcement.salt_cache
    found = cache.get(tenant)
    if found is None:
        if len(cache) >= _SALT_CACHE_MAX:
            cache.clear()
        found = cache[tenant] = derive_salt(enforcement.salt_key, tenant)
    return found


def random_salt() -> str:
    return SALT_PREFIX + secrets.token_hex(_SALT_HEX // 2)


def is_server_salt(value: Any) -> bool:
    def one(v: Any) -> bool:
        return (
            isinstance(v, str)
            and v.startswith(SALT_PREFIX)
            and len(v) == len(SALT_PREFIX) + _SALT_HEX
            and all(c in "0123456789abcdef" for c in v[len(SALT_PREFIX) :])
        )

    if isinstance(value, list):
        return bool(value) and all(one(v) for v in value)
    return one(value)


def load_tenant_keys(path: Path | None) -> dict[str, str]:
    """``{sha256 hex of an API key: tenant}`` from the configured file (keys never stored)."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            f"cannot read tenancy.api_keys_file: {type(exc).__name__}", where=str(path)
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InputError("tenancy.api_keys_file must map SHA-256 hex digests to tenant ids", where=str(path))
    return {k.lower(): v for k, v in data.items()}


def _tenant_from_key(enforcement: Enforcement, authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    found = None
    # Compare against every digest in constant time; no early exit on a match.
    for known, tenant in enforcement.tenant_keys.items():
        if hmac.compare_digest(known, digest):
            found = tenant
    return found


def identify(enforcement: Enforcement, request: Any) -> str | None:
    """The authenticated tenant of an HTTP request (or the in-process scope), else ``None``."""
    bound = _TENANT.get()
    if request is None:
        return bound
    tenancy = enforcement.config.tenancy
    headers = getattr(request, "headers", None)
    if headers is None:
        return bound
    if tenancy.identified_by == "header":
        value = headers.get(tenancy.tenant_header)
        return value.strip() or None if isinstance(value, str) else None
    return _tenant_from_key(enforcement, headers.get("authorization"))


def _client_salted(obj: Any) -> bool:
    value = getattr(obj, "cache_salt", None)
    if isinstance(value, list):
        return any(bool(v) for v in value)
    return bool(value)


def _before_generate(manager: Any, obj: Any, request: Any = None, *args: Any, **kwargs: Any) -> None:
    enforcement = STATE.current
    if enforcement is None:
        return None
    # The client's priority is dropped; the server's default applies.
    if enforcement.active(PRIORITY_MITIGATION) and getattr(obj, "priority", None) is not None:
        obj.priority = None
        STATE.count(AuditKind.REQUEST_REFUSED, PRIORITY_MITIGATION, 1, "requests", reason="client_priority")
    if not enforcement.active(MITIGATION) or not hasattr(obj, "cache_salt"):
        return None
    if request is None:
        request = kwargs.get("request")
    tenant = identify(enforcement, request)
    if _client_salted(obj):
        STATE.count(AuditKind.CLIENT_SALT_OVERRIDDEN, MITIGATION, 1, "requests")
    if tenant is None:
        obj.cache_salt = random_salt()
        STATE.count(AuditKind.CACHE_SALT_APPLIED, MITIGATION, 1, "requests", reason="no_tenant")
    else:
        obj.cache_salt = salt_for(enforcement, tenant)
        STATE.count(AuditKind.CACHE_SALT_APPLIED, MITIGATION, 1, "requests", reason="tenant")
    return None


def _before_scheduler_request(scheduler: Any, recv_req: Any, *args: Any, **kwargs: Any) -> None:
    if not STATE.active(MITIGATION):
        return None
    if not is_server_salt(getattr(recv_req, "cache_salt", None)):
        recv_req.cache_salt = random_salt()
        STATE.count(AuditKind.CACHE_SALT_APPLIED, MITIGATION, 1, "requests", reason="unsalted_ingress")
    return None


HOOKS = [
    (targets.TOKENIZER_GENERATE, _before_generate, "BEFORE"),
    (targets.SCHEDULER_HANDLE_GENERATE, _before_scheduler_request, "BEFORE"),
]
