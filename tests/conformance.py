"""The cross-engine conformance scenario: the same postures must mean the same thing in vLLM and SGLang.

Engine-free, so the vLLM and the SGLang groups (separate environments) import
one definition of what they assert:

* :data:`POSTURES` -- each a plugin configuration and the engine arguments that
  give the posture on each engine (no tenant, header tenant, API-key tenant,
  TTL, encrypted offload, admin routes, and no plugin as the positive control);
* :data:`VERDICTS` -- the one table: the verdict of each rule a posture is about;
* :data:`REQUESTS` and :data:`STATUSES` -- HTTP requests (no tenant, header
  tenant, API-key tenant, copied client salt) and what the tenant boundary in
  front of each engine's real app answers.

Each engine's test builds the real engine's facts with the plugin's own
decision and asserts equality with these tables; both matching the one table
means they match each other. :func:`differs_from_protected` is the positive
control: without the plugin, the same rules do not read as protected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TENANT_HEADER = "x-pccguard-tenant"
#: Test data, not a secret: the API key a tenant presents in the API-key postures.
API_KEY = "conformance-api-key-not-a-secret"
#: Clients connect from another host: loopback is where SGLang's own start-up warmup comes from.
CLIENT = "10.0.0.7"
#: What a request that passes the tenant boundary reads as: it reached the engine's own handler.
FORWARDED = "forwarded"

PCCGUARD_HICACHE = json.dumps(
    {
        "backend_name": "pccguard-aesgcm",
        "module_path": "pccguard.adapters.sglang.runtime.hicache",
        "class_name": "EncryptedHiCacheStorage",
    }
)


@dataclass(frozen=True)
class Posture:
    """A deployment posture: what the plugin is configured to do, and how each engine is started for it."""

    #: ``PCCGUARD_CONFIG`` as a mapping; ``None``: no plugin (engine facts judged as they are).
    plugin: Mapping[str, Any] | None
    vllm_args: tuple[str, ...] = ()
    vllm_env: Mapping[str, str] = field(default_factory=dict)
    sglang_args: tuple[str, ...] = ()


def _plugin(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "profile": "multi-tenant-baseline",
        "tenancy": {"mode": "multi", "identified_by": "header", "tenant_header": TENANT_HEADER},
        # TTL off unless a posture is about it, so the TTL rule shows what the TTL posture changes.
        "mitigations": {"prefix_cache_ttl_seconds": None},
    }
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return base


API_KEY_TENANCY = {"mode": "multi", "identified_by": "api_key", "api_keys_file": "<keys file>"}

POSTURES: dict[str, Posture] = {
    "header_tenant": Posture(_plugin()),
    "api_key_tenant": Posture(_plugin(tenancy=API_KEY_TENANCY)),
    "ttl": Posture(_plugin(mitigations={"prefix_cache_ttl_seconds": 300})),
    "encrypted_offload": Posture(
        _plugin(),
        vllm_args=("--kv-offloading-size", "1"),
        sglang_args=(
            "--enable-hierarchical-cache",
            "--hicache-storage-backend",
            "dynamic",
            "--hicache-storage-backend-extra-config",
            PCCGUARD_HICACHE,
        ),
    ),
    # vLLM mounts its admin routes only in dev mode; SGLang always mounts its 42 privileged routes.
    "admin_routes": Posture(_plugin(), vllm_env={"VLLM_SERVER_DEV_MODE": "1"}),
    "no_plugin": Posture(None),
}

#: Rules about tenant isolation of the prefix cache, which every plugin posture shares.
ISOLATION = {
    "PCC-E-001": "enforced",
    "PCC-S-004": "enforced",
    "PCC-S-001": "enforced",
    "PCC-S-005": "enforced",
}

#: The one table: posture -> rule -> verdict, the same in both engines.
VERDICTS: dict[str, dict[str, str]] = {
    "header_tenant": {**ISOLATION, "PCC-S-003": "fail"},
    "api_key_tenant": {**ISOLATION, "PCC-S-003": "fail"},
    "ttl": {**ISOLATION, "PCC-S-003": "enforced"},
    # Offloaded KV must be cryptographically erasable (vLLM offloads to host memory, SGLang's HiCache to
    # disk as well, so the rule on leaving the trust boundary is about different tiers and is not shared).
    "encrypted_offload": {**ISOLATION, "PCC-S-006": "enforced"},
    "admin_routes": {**ISOLATION, "PCC-E-007": "enforced", "PCC-P-006": "enforced"},
    "no_plugin": {"PCC-E-001": "fail", "PCC-S-004": "fail", "PCC-S-001": "fail", "PCC-S-003": "fail"},
}


@dataclass(frozen=True)
class Request:
    """One HTTP request, sent under one posture's tenancy."""

    posture: str
    method: str
    path: str
    tenant: str | None = None
    bearer: str | None = None
    body: Mapping[str, Any] | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json")]
        if self.tenant is not None:
            headers.append((TENANT_HEADER.encode(), self.tenant.encode()))
        if self.bearer is not None:
            headers.append((b"authorization", f"Bearer {self.bearer}".encode()))
        return headers

    def raw_body(self) -> bytes:
        return json.dumps(self.body).encode() if self.body is not None else b""


#: A salt copied from another tenant (a victim's own, seen in a log, say).
COPIED_SALT = "victims-own-salt"
PROMPT = {"model": "m", "prompt": "the quarterly numbers are", "max_tokens": 1}

REQUESTS: dict[str, Request] = {
    "no_tenant": Request("header_tenant", "POST", "/v1/completions", body=PROMPT),
    "header_tenant": Request("header_tenant", "POST", "/v1/completions", tenant="alice", body=PROMPT),
    "copied_client_salt": Request(
        "header_tenant", "POST", "/v1/completions", body={**PROMPT, "cache_salt": COPIED_SALT}
    ),
    "copied_client_salt_with_tenant": Request(
        "header_tenant",
        "POST",
        "/v1/completions",
        tenant="mallory",
        body={**PROMPT, "cache_salt": COPIED_SALT},
    ),
    "api_key_tenant": Request("api_key_tenant", "POST", "/v1/completions", bearer=API_KEY, body=PROMPT),
    "api_key_unknown": Request("api_key_tenant", "POST", "/v1/completions", bearer="not-a-key", body=PROMPT),
    "api_key_missing": Request("api_key_tenant", "POST", "/v1/completions", body=PROMPT),
    "header_ignored_under_api_keys": Request(
        "api_key_tenant", "POST", "/v1/completions", tenant="alice", body=PROMPT
    ),
}

#: request -> what the boundary answers: a refusal status, or FORWARDED to the engine.
STATUSES: dict[str, int | str] = {
    "no_tenant": 401,
    "header_tenant": FORWARDED,
    "copied_client_salt": 401,  # a salt is not an identity
    "copied_client_salt_with_tenant": FORWARDED,  # the salt is dropped; the tenant's own applies
    "api_key_tenant": FORWARDED,
    "api_key_unknown": 401,
    "api_key_missing": 401,
    "header_ignored_under_api_keys": 401,
}


class ReachedEngine(Exception):
    """Raised by :class:`ServingStandIn` where the engine would start serving: the boundary let it through."""

    def __init__(self, request: Any) -> None:
        super().__init__("the request reached the engine's serving handler")
        self.cache_salt = getattr(request, "cache_salt", None)


class ServingStandIn:
    """Stands in for the engine-backed serving object an API app's completion route calls.

    No engine runs behind the apps here (a model would have to load), and the
    tenant boundary is what is measured: the route, its request parsing and the
    boundary in front of it are the engine's real ones; only the call into the
    engine (vLLM's ``create_completion``, SGLang's ``handle_request``) raises
    :class:`ReachedEngine` with the ``cache_salt`` the engine would have got.
    """

    async def create_completion(self, request: Any, raw_request: Any) -> Any:
        raise ReachedEngine(request)

    async def handle_request(self, request: Any, raw_request: Any) -> Any:
        raise ReachedEngine(request)


def send(app: Any, request: Request, call: Any) -> tuple[int | str, str | None]:
    """``(boundary outcome, cache_salt that reached the engine)`` of one request through ``app``.

    ``call`` is ``tests.asgi_call.asgi_call`` (passed in so this module stays free of test helpers' imports).
    """
    try:
        status, body = call(app, request.method, request.path, request.headers(), request.raw_body(), CLIENT)
    except ReachedEngine as reached:
        return FORWARDED, reached.cache_salt
    return boundary_outcome(status, body), None


def plugin_config(posture: Posture, keys_file: Path) -> dict[str, Any]:
    """The posture's ``PCCGUARD_CONFIG`` with the API key file written where the test asks."""
    if posture.plugin is None:
        raise ValueError("a posture without the plugin has no plugin configuration")
    config = json.loads(json.dumps(posture.plugin))
    if config["tenancy"].get("api_keys_file") is not None:
        keys_file.write_text(f"{hashlib.sha256(API_KEY.encode()).hexdigest()}: alice\n", encoding="utf-8")
        config["tenancy"]["api_keys_file"] = str(keys_file)
    return config


def verdicts(results: Iterable[Any], rules: Iterable[str]) -> dict[str, str]:
    """``rule id -> verdict`` of a report's results, for the rules asked about (``missing`` if absent)."""
    found = {r.id: r.verdict.value for r in results}
    return {rule: found.get(rule, "missing") for rule in rules}


def boundary_outcome(status: int, body: bytes) -> int | str:
    """A refusal by the tenant boundary as its status; any other answer as ``engine <status>``."""
    try:
        answer = json.loads(body or b"null")
    except ValueError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("type") == "pccguard_tenant_boundary":
        return status
    return f"engine {status}"


def differs_from_protected(unprotected: Mapping[str, str]) -> list[str]:
    """The isolation rules whose verdict without the plugin is not the protected one (the positive control)."""
    return [rule for rule, verdict in ISOLATION.items() if unprotected.get(rule) != verdict]
