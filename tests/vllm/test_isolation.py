"""tenant_cache_salt and prefix_cache_ttl in the real EngineCore, with the ingress middleware in front.

Positive controls: the same tenant still gets prefix hits with the plugin, a
minted token is admitted where anything else is refused, and without the plugin
a copied client salt (or no salt at all) shares the cache.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from pccguard.adapters.vllm.runtime.audit import replace_audit_log
from pccguard.adapters.vllm.runtime.middleware import PccguardTenantMiddleware
from pccguard.enforcement.audit import AuditEvent, AuditKind, AuditLog
from pccguard.enforcement.config import PluginConfig
from pccguard.enforcement.tenancy.salts import SaltKeys, is_salt, is_token, process_keys
from tests.asgi_call import asgi_call
from tests.cpu_vllm import tenant_token
from tests.vllm.support import add, make_engine, request, run_until_idle

SECRET_PROMPT = list(range(100, 148))  # 3 full blocks
BASELINE = "profile: multi-tenant-baseline\n"


def _hits(engine: Any, req_id: str, salt: str | None) -> int:
    """Prefix-cache hits (tokens) the scheduler grants a request with ``salt`` and the secret prompt."""
    add(engine, request(req_id, [*SECRET_PROMPT, 1, 2], salt=salt))
    seen: list[int] = []
    schedule = engine.scheduler.schedule

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = schedule(*args, **kwargs)
        seen.extend(r.num_computed_tokens for r in out.scheduled_new_reqs if r.req_id == req_id)
        return out

    engine.scheduler.schedule = spy
    try:
        run_until_idle(engine)
    finally:
        del engine.scheduler.schedule
    assert len(seen) == 1
    return seen[0]


class _Ingress:
    """The plugin's tenant boundary in front of a FastAPI app that records the body the engine would get."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.events: list[AuditEvent] = []
        log = AuditLog("vllm", sinks=[self.events.append])
        self._previous = replace_audit_log(log)
        app = FastAPI()

        @app.post("/v1/completions")
        async def completions(request: Request) -> dict[str, Any]:
            self.bodies.append(json.loads(await request.body()))
            return {}

        app.add_middleware(PccguardTenantMiddleware, settings=PluginConfig())
        self.app = app

    def close(self) -> None:
        replace_audit_log(self._previous)

    def post(self, body: dict[str, Any], tenant: str | None) -> tuple[int, str | None]:
        headers = [(b"content-type", b"application/json")]
        if tenant is not None:
            headers.append((b"x-pccguard-tenant", tenant.encode()))
        status = asgi_call(self.app, "POST", "/v1/completions", headers, json.dumps(body).encode())[0]
        salt = self.bodies[-1].get("cache_salt") if status == 200 else None
        return status, salt


@pytest.fixture
def ingress() -> Any:
    gate = _Ingress()
    yield gate
    gate.close()


def test_same_tenant_hits_other_tenant_and_copied_salt_do_not(
    tiny_model: Path, plugin_config: Any, ingress: _Ingress
) -> None:
    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    _, victim = ingress.post({"prompt": "x", "cache_salt": "victims-own-salt"}, "tenant-a")
    assert is_token(victim) and "tenant-a" not in str(victim)
    assert _hits(engine, "A1", victim) == 0
    # positive control: the same tenant, through the same ingress, gets its prefix back (a fresh token)
    _, again = ingress.post({"prompt": "x"}, "tenant-a")
    assert again != victim
    assert _hits(engine, "A2", again) == 48
    # another tenant
    _, other = ingress.post({"prompt": "x"}, "tenant-b")
    assert _hits(engine, "B1", other) == 0
    # a third tenant that copies the victim's client salt: the ingress overrides it
    _, copied = ingress.post({"prompt": "x", "cache_salt": "victims-own-salt"}, "tenant-c")
    assert copied not in (victim, other)
    assert _hits(engine, "C1", copied) == 0
    overridden = [e for e in ingress.events if e.kind == AuditKind.CLIENT_SALT_OVERRIDDEN]
    assert len(overridden) == 2 and all(e.tenant_ref and e.tenant_ref.startswith("t_") for e in overridden)
    dumped = json.dumps([e.model_dump(mode="json") for e in ingress.events])
    assert "victims-own-salt" not in dumped and "tenant-a" not in dumped and "pcm1." not in dumped


def test_engine_core_admits_only_salts_the_boundary_minted(tiny_model: Path, plugin_config: Any) -> None:
    """A minted token becomes the bare salt, hashed once; a client's salt, a forgery or an old token is refused."""
    from vllm.exceptions import VLLMValidationError

    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    token = tenant_token("victim")
    internal = add(engine, request("A", SECRET_PROMPT, salt=token))  # positive control: admitted
    assert is_salt(internal.cache_salt) and internal.cache_salt.removeprefix("pcs1-") in token
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher
    from vllm.v1.request import Request

    hasher = get_request_block_hasher(16, get_hash_fn_by_name("sha256"))

    def hashes(salt: str) -> list[Any]:
        probe = Request(
            "probe", SECRET_PROMPT, internal.sampling_params, None, cache_salt=salt, block_hasher=hasher
        )
        return list(probe.block_hashes)

    assert internal.block_hashes == hashes(internal.cache_salt)
    assert internal.block_hashes != hashes(token)
    foreign = SaltKeys.generate()
    stale = process_keys().mint(process_keys().tenant_salt("victim"), now=time.time() - 601)
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    for i, claimed in enumerate(
        [
            None,
            "victims-own-salt",
            internal.cache_salt,
            foreign.mint(foreign.tenant_salt("victim")),
            stale,
            tampered,
        ]
    ):
        with pytest.raises(VLLMValidationError, match="refused by pccguard") as refused:
            add(engine, request(f"R{i}", SECRET_PROMPT, salt=claimed))
        assert refused.value.parameter == "cache_salt"
        assert claimed is None or claimed not in str(refused.value)


def test_no_tenant_is_refused_at_ingress(ingress: _Ingress) -> None:
    status, _ = ingress.post({"prompt": "x"}, None)
    assert status == 401
    assert any(e.kind == AuditKind.REQUEST_REFUSED and e.reason == "no_tenant" for e in ingress.events)


def test_control_vllm_as_shipped_shares_across_copied_salts(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config("enabled: false\n")
    engine = make_engine(tiny_model)
    assert _hits(engine, "A1", "victims-own-salt") == 0
    assert _hits(engine, "B1", "victims-own-salt") == 48  # the copied salt hits: the attack works
    assert _hits(engine, "X1", None) == 0
    assert _hits(engine, "X2", None) == 48  # no salt: everyone shares


def test_ttl_expires_and_scrubs(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(BASELINE + "mitigations:\n  prefix_cache_ttl_seconds: 0.5\n")
    engine = make_engine(tiny_model)
    assert _hits(engine, "A1", tenant_token("tenant-a")) == 0
    assert (
        _hits(engine, "A2", tenant_token("tenant-a")) == 48
    )  # positive control: within the TTL the tenant hits
    pool = engine.scheduler.kv_cache_manager.block_pool
    cached = [b.block_id for b in pool.blocks if b.block_hash is not None]
    worker = engine.model_executor.worker
    canary = {float(t) for t in SECRET_PROMPT}
    assert any(worker.block_values(b) & canary for b in cached)
    woken = threading.Event()
    engine.scheduler.pccguard_set_waker(woken.set)  # what the engine loop hook installs
    assert woken.wait(3.0), "the idle engine is woken when the oldest prefix expires"
    time.sleep(0.05)
    assert engine.scheduler.has_requests(), "expired prefixes keep the engine stepping"
    run_until_idle(engine)
    assert len(pool.cached_block_hash_to_block) == 0
    assert not any(worker.block_values(b) & canary for b in range(pool.num_gpu_blocks)), "expired KV scrubbed"
    assert _hits(engine, "A3", tenant_token("tenant-a")) == 0  # after the TTL the tenant's own request misses


def test_server_side_priority(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(BASELINE)
    engine = make_engine(tiny_model, scheduling_policy="priority")
    internal = add(engine, request("P", [1, 2, 3], priority=-100, salt=tenant_token("a")))
    assert internal.priority == 0
    run_until_idle(engine)
