"""tenant_cache_salt and prefix_cache_ttl in the real EngineCore, with the ingress middleware in front.

Positive controls: the same tenant still gets prefix hits with the plugin, and
without the plugin a copied client salt (or no salt at all) shares the cache.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.vllm.runtime.audit import replace_audit_log
from pccguard.adapters.vllm.runtime.middleware import PccguardTenantMiddleware
from pccguard.audit import AuditEvent, AuditKind, AuditLog
from pccguard.config import PluginConfig
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
    """The plugin's ASGI middleware in front of an app that records the body the engine would get."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.events: list[AuditEvent] = []
        log = AuditLog("vllm", sinks=[self.events.append])
        self._previous = replace_audit_log(log)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            message = await receive()
            self.bodies.append(json.loads(message["body"]))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        self.middleware = PccguardTenantMiddleware(app, PluginConfig())

    def close(self) -> None:
        replace_audit_log(self._previous)

    def post(self, body: dict[str, Any], tenant: str | None) -> tuple[int, str | None]:
        headers = [(b"content-type", b"application/json")]
        if tenant is not None:
            headers.append((b"x-pccguard-tenant", tenant.encode()))
        sent: list[dict[str, Any]] = []
        raw = json.dumps(body).encode()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": headers}
        asyncio.run(self.middleware(scope, receive, send))
        status = int(sent[0]["status"])
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
    assert victim and victim.startswith("pccguard-t-") and "tenant-a" not in victim
    assert _hits(engine, "A1", victim) == 0
    # positive control: the same tenant, through the same ingress, gets its prefix back
    _, again = ingress.post({"prompt": "x"}, "tenant-a")
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
    assert "victims-own-salt" not in dumped and "tenant-a" not in dumped and "pccguard-t-" not in dumped


def test_salt_in_request_is_replaced_and_hashes_recomputed(tiny_model: Path, plugin_config: Any) -> None:
    """Even a request that names the victim's pseudonym directly gets a server-derived salt."""
    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    named = "pccguard-t-victim"  # not hex, so it cannot appear in the derived digest by chance
    internal = add(engine, request("A", SECRET_PROMPT, salt=named))
    assert re.fullmatch(r"pccguard-s-[0-9a-f]{64}", internal.cache_salt)
    assert "victim" not in internal.cache_salt
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
    assert internal.block_hashes != hashes(named)


def test_no_tenant_is_refused_at_ingress(ingress: _Ingress) -> None:
    status, _ = ingress.post({"prompt": "x"}, None)
    assert status == 401
    assert any(e.kind == AuditKind.REQUEST_REFUSED and e.reason == "no_tenant" for e in ingress.events)


def test_anonymous_requests_never_share(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(BASELINE)
    engine = make_engine(tiny_model)
    assert _hits(engine, "X1", None) == 0
    assert _hits(engine, "X2", None) == 0


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
    salt = "pccguard-t-tenant-a"
    assert _hits(engine, "A1", salt) == 0
    assert _hits(engine, "A2", salt) == 48  # positive control: within the TTL the tenant hits
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
    assert _hits(engine, "A3", salt) == 0  # after the TTL the tenant's own request misses


def test_server_side_priority(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config(BASELINE)
    engine = make_engine(tiny_model, scheduling_policy="priority")
    internal = add(engine, request("P", [1, 2, 3], priority=-100))
    assert internal.priority == 0
    run_until_idle(engine)
