"""Server-derived prefix-cache salts: HMAC-SHA256 of the tenant under a key that never leaves this process.

vLLM mixes ``Request.cache_salt`` into the hash of a request's first block,
and the chain carries it into every later block. vLLM takes that salt from the
client. Here the API ingress writes the authenticated tenant's pseudonym into
the field (overriding whatever the client sent), and the scheduler replaces it
with ``HMAC(key, pseudonym)`` and recomputes the block hashes (they were
computed when the ``Request`` was built, so changing the field alone does
nothing). A request without a tenant gets a fresh random salt: it shares
nothing. The key is generated at start and held only in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

#: Prefix of the tenant pseudonym the ingress middleware writes into ``cache_salt``.
TENANT_PREFIX = "pccguard-t-"


class TenantSalter:
    """Derive per-tenant salts; the key is per process and never logged or exported."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def __repr__(self) -> str:
        return "TenantSalter(<key hidden>)"

    def salt_for(self, tenant_ref: str | None) -> str:
        if not tenant_ref:
            return "pccguard-anon-" + secrets.token_hex(16)
        digest = hmac.new(self._key, b"vllm-cache-salt\x00" + tenant_ref.encode("utf-8"), hashlib.sha256)
        return "pccguard-s-" + digest.hexdigest()

    def derive(self, claimed: Any) -> tuple[str, bool]:
        """The effective salt for the ingress-written ``cache_salt``, and whether it named a tenant."""
        tenant_ref = claimed if isinstance(claimed, str) and claimed.startswith(TENANT_PREFIX) else None
        return self.salt_for(tenant_ref), tenant_ref is not None

    def apply(self, request: Any) -> bool:
        """Replace the request's salt and recompute its block hashes; True if a tenant was named."""
        request.cache_salt, named = self.derive(request.cache_salt)
        if getattr(request, "_block_hasher", None) is not None:
            request.block_hashes = []
            request.update_block_hashes()
        return named


class IngressPseudonyms:
    """The ingress side: the authenticated tenant id becomes a keyed pseudonym (the id itself never travels)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def __repr__(self) -> str:
        return "IngressPseudonyms(<key hidden>)"

    def __call__(self, tenant: str) -> str:
        digest = hmac.new(self._key, tenant.encode("utf-8"), hashlib.sha256).hexdigest()
        return TENANT_PREFIX + digest[:40]
