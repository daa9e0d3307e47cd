"""The tenant boundary's core: salt derivation, tokens, the engine-core gate and tenant identification.

Every refusal is shown next to its positive control: the token that opens, the
key that resolves, the salt the gate admits.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from pathlib import Path

import pytest

from pccguard.enforcement.config import TenancyConfig
from pccguard.enforcement.tenancy.gate import REFUSAL, SaltGate, refusal_message
from pccguard.enforcement.tenancy.identity import (
    SINGLE_TENANT,
    TenantResolver,
    current_tenant,
    load_key_file,
    tenant_scope,
)
from pccguard.enforcement.tenancy.salts import (
    SaltKeys,
    SaltKind,
    TokenRefused,
    encode_fields,
    is_salt,
    is_token,
    isolated_salt,
)
from pccguard.errors import InputError

NOW = 1_800_000_000.0


@pytest.fixture
def keys() -> SaltKeys:
    return SaltKeys(b"k" * 32)


# ---------------------------------------------------------------------- derivation


def test_salts_are_per_tenant_and_per_key_set(keys: SaltKeys) -> None:
    alice = keys.tenant_salt("alice")
    assert alice == keys.tenant_salt("alice")  # positive control: the same tenant keeps its salt
    assert alice != keys.tenant_salt("bob")
    assert alice != SaltKeys(b"j" * 32).tenant_salt("alice")  # another start, another salt
    assert is_salt(alice) and not is_token(alice)


def test_kinds_and_field_boundaries_never_collide(keys: SaltKeys) -> None:
    assert keys.salt(SaltKind.TENANT, "x") != keys.salt(SaltKind.ADAPTER, "x")
    # Length prefixes: ("ab", "c") and ("a", "bc") are different inputs.
    assert encode_fields(b"d", [b"ab", b"c"]) != encode_fields(b"d", [b"a", b"bc"])
    two = keys.salt(SaltKind.TENANT, "a", (SaltKind.ADAPTER, "bc"))
    assert two != keys.salt(SaltKind.TENANT, "ab", (SaltKind.ADAPTER, "c"))
    with pytest.raises(ValueError, match="non-empty"):
        keys.salt(SaltKind.TENANT, "")


def test_short_master_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SaltKeys(b"short")


def test_keys_never_show_and_survive_the_process_pipe(keys: SaltKeys) -> None:
    assert repr(keys) == str(keys) == "SaltKeys(<hidden>)"
    copy = pickle.loads(pickle.dumps(keys))
    assert copy == keys and hash(copy) == hash(keys)
    assert copy.tenant_salt("alice") == keys.tenant_salt("alice")
    assert copy != SaltKeys.generate()


def test_isolated_salts_are_unique() -> None:
    salts = {isolated_salt() for _ in range(1000)}
    assert len(salts) == 1000 and all(is_salt(s) for s in salts)


# ---------------------------------------------------------------------- tokens


def test_a_minted_token_opens_to_its_salt(keys: SaltKeys) -> None:
    salt = keys.tenant_salt("alice")
    token = keys.mint(salt, now=NOW)
    assert is_token(token) and len(token) <= 128  # vLLM bounds cache_salt's length
    assert keys.open(token, now=NOW + 1) == salt
    assert keys.mint(salt, now=NOW) != token  # a fresh nonce every time


@pytest.mark.parametrize(
    ("claimed", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        (42, "malformed"),
        ("my-own-salt", "malformed"),
        ("pcs1-" + "0" * 32, "malformed"),  # a bare salt copied from somewhere is not a token
        ("pcm1." + "0" * 32 + ".1." + "0" * 24 + "." + "0" * 32, "forged"),
    ],
)
def test_anything_unminted_is_refused(keys: SaltKeys, claimed: object, reason: str) -> None:
    with pytest.raises(TokenRefused) as err:
        keys.open(claimed, now=NOW)
    assert err.value.reason == reason


def test_a_token_cannot_be_altered_or_moved_between_starts(keys: SaltKeys) -> None:
    token = keys.mint(keys.tenant_salt("alice"), now=NOW)
    other_salt = keys.tenant_salt("bob")[len("pcs1-") :]
    swapped = token.replace(token.split(".")[1], other_salt)
    with pytest.raises(TokenRefused, match="forged"):
        keys.open(swapped, now=NOW)
    with pytest.raises(TokenRefused, match="forged"):
        SaltKeys(b"j" * 32).open(token, now=NOW)


def test_tokens_expire_and_cannot_come_from_the_future(keys: SaltKeys) -> None:
    token = keys.mint(keys.tenant_salt("alice"), now=NOW)
    assert keys.open(token, now=NOW + 600, max_age=600)
    with pytest.raises(TokenRefused, match="expired"):
        keys.open(token, now=NOW + 601, max_age=600)
    with pytest.raises(TokenRefused, match="issued_in_future"):
        keys.open(token, now=NOW - 60)


def test_only_a_derived_salt_can_be_minted(keys: SaltKeys) -> None:
    with pytest.raises(ValueError, match="derived salt"):
        keys.mint("client-salt")


# ---------------------------------------------------------------------- the engine-core gate


def test_multi_tenant_gate_admits_only_minted_salts(keys: SaltKeys) -> None:
    gate = SaltGate(keys, "multi", max_age=600)
    salt = keys.tenant_salt("alice")
    assert gate.admit(keys.mint(salt)) == salt
    for claimed in (None, "client-salt", salt):
        with pytest.raises(TokenRefused) as err:
            gate.admit(claimed)
        assert refusal_message(err.value).startswith(REFUSAL)
        assert salt not in refusal_message(err.value)


def test_single_tenant_gate_gives_everyone_the_one_tenants_salt(keys: SaltKeys) -> None:
    gate = SaltGate(keys, "single")
    assert gate.admit("client-salt") == gate.admit(None) == keys.tenant_salt(SINGLE_TENANT)


# ---------------------------------------------------------------------- identity


def _multi(**kw: object) -> TenancyConfig:
    return TenancyConfig.model_validate({"mode": "multi", **kw})


def test_tenant_scope_binds_and_unbinds() -> None:
    assert current_tenant() is None
    with tenant_scope("alice"):
        assert current_tenant() == "alice"
        seen: list[str | None] = []
        worker = threading.Thread(target=lambda: seen.append(current_tenant()))
        worker.start()
        worker.join()
        assert seen == [None]  # another thread is not inside the scope
    assert current_tenant() is None
    with pytest.raises(ValueError):
        tenant_scope(" ").__enter__()


def test_header_tenant_and_ambiguous_headers() -> None:
    resolver = TenantResolver(_multi(tenant_header="X-Tenant"))
    assert resolver.tenant([(b"x-tenant", b" alice ")]) == "alice"
    assert resolver.tenant([]) is None
    assert resolver.tenant([(b"x-tenant", b"")]) is None
    assert resolver.tenant([(b"x-tenant", b"alice"), (b"X-Tenant", b"bob")]) is None


def test_single_mode_has_one_tenant() -> None:
    assert TenantResolver(TenancyConfig(mode="single")).tenant([]) == SINGLE_TENANT


def test_api_keys_resolve_by_digest(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"{hashlib.sha256(b'sk-alice').hexdigest()}: alice\n{hashlib.sha256(b'sk-bob').hexdigest()}: bob\n"
    )
    resolver = TenantResolver(_multi(identified_by="api_key", api_keys_file=str(path)))
    assert resolver.tenant([(b"authorization", b"Bearer sk-alice")]) == "alice"
    assert resolver.tenant([(b"authorization", b"bearer sk-bob")]) == "bob"
    assert resolver.tenant([(b"authorization", b"Bearer sk-mallory")]) is None
    assert resolver.tenant([(b"authorization", b"Basic sk-alice")]) is None
    assert "sk-" not in repr(resolver)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("[]\n", "must map SHA-256 hex digests", None),
        ("abc: alice\n", "not a SHA-256 hex digest", 1),
        (f"{'a' * 64}: alice\n{'b' * 64}: ''\n", "non-empty string", 2),
        (f"{'a' * 64}: [alice]\n", "non-empty string", 1),
    ],
)
def test_malformed_key_files_are_refused_with_their_line(
    tmp_path: Path, text: str, message: str, line: int | None
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        load_key_file(path)
    where = str(err.value.where)
    assert where == (f"{path}:{line}" if line else str(path))


def test_api_key_mode_needs_its_key_file() -> None:
    with pytest.raises(ValueError, match="api_keys_file"):
        _multi(identified_by="api_key")
