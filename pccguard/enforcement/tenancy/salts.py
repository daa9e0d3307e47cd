"""Server-derived cache salts, and the tokens that carry them from the ingress to the engine core.

Engines key their prefix caches by a ``cache_salt`` that the client chooses.
pccguard replaces it in two steps, with one key set generated at start:

* **derive** -- ``salt = HMAC-SHA256(salt key, encode(domain, kind, value, ...))``
  over typed, length-prefixed fields. The kind of identity (a tenant today;
  adapters, multimodal inputs and models share the encoding) is part of the
  input, so a tenant called like an adapter can never collide with it.
  Audit pseudonyms (``t_`` + 16 hex) are the same construction under their
  own domain: stable per tenant within a key set, unrelated to any salt.
* **carry** -- the ingress mints a token binding that salt to an issue time and
  a fresh nonce under a second key (an HMAC tag). The engine core accepts a
  request only with a valid, unexpired token and replaces it with the bare
  salt before it hashes a block. A request that reaches the engine core by a
  route the ingress never saw carries no valid token and is refused there:
  a route nobody listed fails closed.

The key set lives in memory. It travels to the engine-core process inside the
engine's own configuration object (pickled over the process-start pipe, never
written to a file or the environment) and its ``repr`` shows nothing.
Comparisons of tags are constant-time.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from enum import StrEnum
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: Prefix of a derived salt (what the engine hashes with).
SALT_PREFIX = "pcs1-"
#: Prefix of a tenant's audit pseudonym (what audit events name a tenant by).
PSEUDONYM_PREFIX = "t_"
#: Prefix of a minted token (what travels from the ingress to the engine core).
TOKEN_PREFIX = "pcm1."
#: Default lifetime of a minted token: long enough for queueing and beam search, short enough to bound replay.
DEFAULT_TOKEN_MAX_AGE_S = 600.0
#: Seconds a token may appear issued in the future (processes on one host share a clock).
CLOCK_SKEW_S = 5.0

_DOMAIN_SALT = b"pccguard.salt.v1"
_DOMAIN_TOKEN = b"pccguard.salt-token.v1"
_DOMAIN_PSEUDONYM = b"pccguard.audit-pseudonym.v1"
_SALT_BYTES = 16
_PSEUDONYM_BYTES = 8
_NONCE_BYTES = 12
_TAG_BYTES = 16
_TOKEN_RE = re.compile(
    r"^pcm1\.(?P<salt>[0-9a-f]{32})\.(?P<issued>[0-9a-f]{1,12})\.(?P<nonce>[0-9a-f]{24})\.(?P<tag>[0-9a-f]{32})$"
)
_SALT_RE = re.compile(r"^pcs1-[0-9a-f]{32}$")


class SaltKind(StrEnum):
    """What a salt is derived from; part of every salt's input, so kinds never collide."""

    TENANT = "tenant"
    ADAPTER = "adapter"
    MULTIMODAL = "multimodal"
    MODEL = "model"


class TokenRefused(Exception):
    """A cache salt that pccguard's ingress did not mint (or that expired); ``reason`` is a short code."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def encode_fields(domain: bytes, fields: list[bytes]) -> bytes:
    """Length-prefixed concatenation: no two field lists encode to the same bytes."""
    parts = [domain, *fields]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


class SaltKeys:
    """The two keys of one start: one derives salts, one authenticates tokens. Never shown, never logged."""

    __slots__ = ("_mint", "_salt")

    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise ValueError("the master key must have at least 32 bytes")
        derived = HKDF(
            algorithm=hashes.SHA256(), length=64, salt=None, info=b"pccguard.tenancy.keys.v1"
        ).derive(master)
        self._salt = derived[:32]
        self._mint = derived[32:]

    @classmethod
    def generate(cls) -> SaltKeys:
        return cls(secrets.token_bytes(32))

    def __repr__(self) -> str:
        return "SaltKeys(<hidden>)"

    def __reduce__(self) -> tuple[Any, tuple[bytes, bytes]]:
        # Pickled only to cross into the engine's own processes, inside its configuration.
        return (_restore, (self._salt, self._mint))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SaltKeys) and hmac.compare_digest(
            self._salt + self._mint, other._salt + other._mint
        )

    def __hash__(self) -> int:  # equal key sets hash equal; the hash reveals nothing of the keys
        return hash(SaltKeys)

    # ------------------------------------------------------------------ derive

    def salt(self, kind: SaltKind, value: str, *more: tuple[SaltKind, str]) -> str:
        """The salt for an identity, e.g. ``salt(SaltKind.TENANT, "alice")``."""
        return SALT_PREFIX + self._derive(_DOMAIN_SALT, ((kind, value), *more))[:_SALT_BYTES].hex()

    def tenant_salt(self, tenant: str) -> str:
        return self.salt(SaltKind.TENANT, tenant)

    def tenant_pseudonym(self, tenant: str) -> str:
        """The name audit events give ``tenant``: the salt derivation under the pseudonym domain.

        The domain is the first length-prefixed field, so no pseudonym input equals a salt
        input; an HMAC output reveals nothing of another, so a pseudonym tells nothing of
        the tenant's salt.
        """
        return (
            PSEUDONYM_PREFIX
            + self._derive(_DOMAIN_PSEUDONYM, ((SaltKind.TENANT, tenant),))[:_PSEUDONYM_BYTES].hex()
        )

    def _derive(self, domain: bytes, identities: tuple[tuple[SaltKind, str], ...]) -> bytes:
        fields: list[bytes] = []
        for k, v in identities:
            if not isinstance(v, str) or not v:
                raise ValueError(f"a {SaltKind(k).value} identity must be a non-empty string")
            fields += [SaltKind(k).value.encode("ascii"), v.encode("utf-8")]
        return hmac.new(self._salt, encode_fields(domain, fields), sha256).digest()

    # ------------------------------------------------------------------ carry

    def mint(self, salt: str, *, now: float | None = None) -> str:
        """A token carrying ``salt`` (a derived salt) to the engine core."""
        if not _SALT_RE.match(salt):
            raise ValueError("only a derived salt can be minted")
        salt_hex = salt[len(SALT_PREFIX) :]
        issued = f"{int(time.time() if now is None else now):x}"
        nonce = secrets.token_hex(_NONCE_BYTES)
        return f"{TOKEN_PREFIX}{salt_hex}.{issued}.{nonce}.{self._tag(salt_hex, issued, nonce)}"

    def open(
        self, token: object, *, now: float | None = None, max_age: float = DEFAULT_TOKEN_MAX_AGE_S
    ) -> str:
        """The salt a valid token carries; raises ``TokenRefused`` for anything else."""
        if token is None or token == "":
            raise TokenRefused("missing")
        if not isinstance(token, str):
            raise TokenRefused("malformed")
        match = _TOKEN_RE.match(token)
        if match is None:
            raise TokenRefused("malformed")
        salt_hex, issued, nonce, tag = match.group("salt", "issued", "nonce", "tag")
        if not hmac.compare_digest(self._tag(salt_hex, issued, nonce), tag):
            raise TokenRefused("forged")
        clock = time.time() if now is None else now
        age = clock - int(issued, 16)
        if age < -CLOCK_SKEW_S:
            raise TokenRefused("issued_in_future")
        if age > max_age:
            raise TokenRefused("expired")
        return SALT_PREFIX + salt_hex

    def _tag(self, salt_hex: str, issued: str, nonce: str) -> str:
        data = encode_fields(_DOMAIN_TOKEN, [salt_hex.encode(), issued.encode(), nonce.encode()])
        return hmac.new(self._mint, data, sha256).digest()[:_TAG_BYTES].hex()


def _restore(salt_key: bytes, mint_key: bytes) -> SaltKeys:
    keys = SaltKeys.__new__(SaltKeys)
    keys._salt = salt_key
    keys._mint = mint_key
    return keys


def isolated_salt() -> str:
    """A salt nobody else has: a request given one shares no cached prefix with any other."""
    return SALT_PREFIX + secrets.token_hex(_SALT_BYTES)


def is_salt(value: object) -> bool:
    """Whether ``value`` has the form of a derived salt (form only: it proves nothing)."""
    return isinstance(value, str) and _SALT_RE.match(value) is not None


def is_token(value: object) -> bool:
    """Whether ``value`` has the form of a minted token (form only: ``SaltKeys.open`` decides)."""
    return isinstance(value, str) and _TOKEN_RE.match(value) is not None


_process_lock = threading.Lock()
_process_keys: SaltKeys | None = None


def process_keys() -> SaltKeys:
    """This process's key set, generated on first use: one start of an engine is one key set."""
    global _process_keys
    with _process_lock:
        if _process_keys is None:
            _process_keys = SaltKeys.generate()
        return _process_keys


def adopt_process_keys(keys: SaltKeys) -> SaltKeys:
    """Use the key set the parent process handed over (an engine core, a scheduler) as this process's."""
    global _process_keys
    if not isinstance(keys, SaltKeys):
        raise TypeError("salt keys must be a SaltKeys")
    with _process_lock:
        if _process_keys is None:
            _process_keys = keys
        elif _process_keys != keys:
            raise RuntimeError("two different salt key sets in one process")
        return _process_keys


def tenant_token(tenant: str) -> str:
    """A token for ``tenant``'s salt under this process's key set: the ``cache_salt`` of an in-process call.

    The HTTP boundary mints these itself. Code in the serving process that drives
    the engine directly (vLLM's ``LLM``) passes one as a request's ``cache_salt``;
    it is as trusted as the engine object it already holds.
    """
    keys = process_keys()
    return keys.mint(keys.tenant_salt(tenant))
