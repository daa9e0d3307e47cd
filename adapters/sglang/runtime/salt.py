"""``tenant_cache_salt`` on SGLang: the tenant boundary in front of the HTTP app, the salt gate in the scheduler.

SGLang 0.5.23 namespaces its radix tree, the scheduler's in-queue matching
tree, HiCache L3 keys and KV-event hashes by ``cache_salt`` -- a salt the
client chooses. The plugin binds it to the tenant in three places:

* the shared tenant boundary (``pccguard.enforcement.tenancy.boundary``) is added to
  SGLang's FastAPI app before it serves: every route of the live app is bound
  by :data:`~pccguard.adapters.sglang.routes.ROUTE_TABLE`; a prompt route
  refuses a request without a tenant (401), strips the client's salt, and runs
  the request with its tenant bound;
* ``TokenizerManager.generate_request`` -- SGLang's engine ingress, which every
  route and the in-process ``Engine`` go through, and the only way into the
  scheduler -- sets ``cache_salt`` to a token minted for the bound tenant
  (HTTP: the boundary; ``Engine``: :func:`tenant_scope`). A request with no
  tenant bound -- from a route the boundary never saw, or an ``Engine`` call
  outside a tenant scope -- is refused there (``ValueError``, which SGLang
  answers with HTTP 400). Embedding requests carry no salt in 0.5.23, so with
  the radix cache on they are refused too. SGLang's own one-token health probe
  gets a salt of its own;
* ``Scheduler.handle_generate_request`` opens the token with the salt gate and
  runs the request with the bare salt; anything that arrives without a valid
  token runs with a salt of its own and shares nothing.

SGLang's own start-up warmup posts to ``/generate`` without a tenant; while it
runs (``_wait_and_warmup``) a request from loopback without a tenant is given a
one-off tenant of its own, which shares nothing with anyone.
"""

from __future__ import annotations

from typing import Any

from pccguard.enforcement.audit import AuditKind
from pccguard.enforcement.tenancy.gate import REFUSAL
from pccguard.enforcement.tenancy.identity import SINGLE_TENANT, current_tenant, tenant_scope
from pccguard.enforcement.tenancy.salts import TokenRefused, isolated_salt

from . import targets
from .state import STATE, Enforcement

MITIGATION = "tenant_cache_salt"
PRIORITY_MITIGATION = "server_side_priority"
_SALT_CACHE_MAX = 4096
EMBEDDING_REFUSAL = (
    "refused by pccguard: SGLang's embedding requests carry no cache salt to keep tenants apart"
)

__all__ = ["HOOKS", "MITIGATION", "tenant_scope"]


def tenant_salt(enforcement: Enforcement, tenant: str) -> str:
    """The tenant's derived salt, memoised per process (the cache is as secret as the keys beside it)."""
    gate = enforcement.gate
    if gate is None:
        raise RuntimeError("tenant_cache_salt is not installed in this process")
    cache = enforcement.salt_cache
    found = cache.get(tenant)
    if found is None:
        if len(cache) >= _SALT_CACHE_MAX:
            cache.clear()
        found = cache[tenant] = gate.keys.tenant_salt(tenant)
    return found


def _client_salted(obj: Any) -> bool:
    value = getattr(obj, "cache_salt", None)
    if isinstance(value, list):
        return any(bool(v) for v in value)
    return bool(value)


def _before_generate(manager: Any, obj: Any, *args: Any, **kwargs: Any) -> None:
    enforcement = STATE.current
    if enforcement is None:
        return None
    # The client's priority is dropped; the server's default applies.
    if enforcement.active(PRIORITY_MITIGATION) and getattr(obj, "priority", None) is not None:
        obj.priority = None
        STATE.count(AuditKind.REQUEST_REFUSED, PRIORITY_MITIGATION, 1, "requests", reason="client_priority")
    gate = enforcement.gate
    if gate is None:
        return None
    if not hasattr(obj, "cache_salt"):
        # Embedding requests carry no salt in 0.5.23: with the radix cache on they would share it.
        if gate.mode == "multi" and enforcement.radix_cache:
            STATE.count(AuditKind.REQUEST_REFUSED, MITIGATION, 1, "requests", reason="salt_embedding")
            raise ValueError(EMBEDDING_REFUSAL)
        return None
    if _client_salted(obj):
        STATE.count(AuditKind.CLIENT_SALT_OVERRIDDEN, MITIGATION, 1, "requests")
    tenant = current_tenant()
    if tenant is None and gate.mode == "single":
        tenant = SINGLE_TENANT
    if tenant is not None:
        obj.cache_salt = gate.keys.mint(tenant_salt(enforcement, tenant))
        return None
    if _is_health_check(obj):
        # SGLang's own one-token liveness probe: a salt of its own, shared with nobody.
        obj.cache_salt = gate.keys.mint(isolated_salt())
        return None
    STATE.count(AuditKind.REQUEST_REFUSED, MITIGATION, 1, "requests", reason="salt_missing")
    raise ValueError(f"{REFUSAL} (missing)")


def _is_health_check(obj: Any) -> bool:
    from sglang.srt.constants import HEALTH_CHECK_RID_PREFIX

    rid = getattr(obj, "rid", None)
    return isinstance(rid, str) and rid.startswith(HEALTH_CHECK_RID_PREFIX)


def _before_handle_generate(scheduler: Any, recv_req: Any, *args: Any, **kwargs: Any) -> None:
    gate = STATE.current.gate if STATE.current is not None else None
    if gate is None:
        return None
    try:
        recv_req.cache_salt = gate.admit(getattr(recv_req, "cache_salt", None))
    except TokenRefused as exc:
        # Nothing reaches the scheduler but through the tokenizer manager, which refuses unminted salts;
        # should anything else arrive, it runs with a salt of its own and shares nothing.
        recv_req.cache_salt = isolated_salt()
        STATE.count(AuditKind.CACHE_SALT_APPLIED, MITIGATION, 1, "requests", reason=f"isolated_{exc.reason}")
        return None
    STATE.count(AuditKind.CACHE_SALT_APPLIED, MITIGATION, 1, "requests", reason="tenant")
    return None


def _around_warmup(original: Any, *args: Any, **kwargs: Any) -> Any:
    STATE.warmup_open = True
    try:
        return original(*args, **kwargs)
    finally:
        STATE.warmup_open = False


HOOKS = [
    (targets.TOKENIZER_GENERATE, _before_generate, "BEFORE"),
    (targets.SCHEDULER_HANDLE_GENERATE, _before_handle_generate, "BEFORE"),
    (targets.HTTP_WARMUP, _around_warmup, "AROUND"),
]
