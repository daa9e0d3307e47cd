"""pccguard's vLLM scheduler: vLLM's own ``Scheduler`` with the mitigations bound in (``--scheduler-cls``).

Everything else is vLLM's code. The subclass

* holds the salt gate the engine core admits every request through (``hooks``),
  and gives a request that reached it some other way a salt nobody shares;
* fixes every request's priority on the server when the policy is ``priority``;
* expires cached prefixes past the TTL at the start of every ``schedule()``;
* sends the scrub queue to the workers through ``new_block_ids_to_zero``,
  the channel vLLM already uses to zero blocks for hybrid models, whose
  workers zero those blocks at the start of the step, before the model runs;
* keeps the engine stepping while blocks wait for zeroing (``has_requests``),
  so freed KV is cleared even when no other request follows.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler

from pccguard.adapters.vllm.runtime.audit import audit_log
from pccguard.adapters.vllm.runtime.hooks import verify_engine_core
from pccguard.adapters.vllm.runtime.logs import apply_if_installed
from pccguard.adapters.vllm.runtime.plan import KEYS_ATTR, PLAN_KEY, RuntimePlan, decide
from pccguard.adapters.vllm.runtime.scrub import ScrubTracker
from pccguard.adapters.vllm.runtime.ttl import PrefixTTL
from pccguard.enforcement.audit import AuditAggregator, AuditKind
from pccguard.enforcement.tenancy.gate import SaltGate
from pccguard.enforcement.tenancy.salts import adopt_process_keys, isolated_salt
from pccguard.errors import EnforcementError

_NONE: frozenset[int] = frozenset()


def plan_from_config(vllm_config: Any) -> RuntimePlan:
    """The plan decided when the configuration was built, or decided now (refusing the start on a deny)."""
    extra = getattr(vllm_config, "additional_config", None)
    if isinstance(extra, dict) and isinstance(extra.get(PLAN_KEY), dict):
        return RuntimePlan.from_dict(extra[PLAN_KEY])
    plan, _ = decide(vllm_config)
    return plan


class PccguardSchedulerMixin:
    """The overrides; mixed into vLLM's synchronous and asynchronous schedulers below."""

    pccguard_plan: RuntimePlan
    pccguard_scrub: ScrubTracker | None
    pccguard_ttl: PrefixTTL | None
    pccguard_salt_gate: SaltGate | None

    def _pccguard_setup(self, vllm_config: Any) -> None:
        # The engine core builds its scheduler: prove here, in the process that serves, that the
        # engine-core hooks took (the salt gate and the idle waker depend on them).
        verify_engine_core()
        plan = plan_from_config(vllm_config)
        apply_if_installed(plan.install)
        self.pccguard_plan = plan
        self._pccguard_waker: Callable[[], None] | None = None
        self._pccguard_timer: threading.Timer | None = None
        #: Salted requests, scrubbed blocks, refusals: counted on the hot path, emitted at the shared audit rate.
        self.pccguard_audit = AuditAggregator(audit_log)
        pool = self.kv_cache_manager.block_pool  # type: ignore[attr-defined]
        log = audit_log()
        self.pccguard_scrub = ScrubTracker(pool) if plan.has("scrub_freed_kv") else None
        #: What the last two steps handed the workers to zero, kept only where steps overlap (pipeline
        #: parallelism, async scheduling: vLLM's batch queue), where one in flight may not have zeroed it yet
        #: (``residue``).
        self.pccguard_recently_zeroed: deque[frozenset[int]] | None = (
            deque(maxlen=2) if vllm_config.max_concurrent_batches > 1 else None
        )
        self.pccguard_ttl = (
            PrefixTTL(pool, plan.ttl_seconds) if plan.has("prefix_cache_ttl") and plan.ttl_seconds else None
        )
        self.pccguard_salt_gate = _salt_gate(vllm_config, plan) if plan.has("tenant_cache_salt") else None
        for mitigation in plan.install:
            log.emit(AuditKind.MITIGATION_INSTALLED, mitigation=mitigation, reason="scheduler")

    # ------------------------------------------------------------------ requests

    def add_request(self, request: Any) -> None:
        count = self.pccguard_audit.count
        if self.pccguard_salt_gate is not None:
            if getattr(request, "_pccguard_salted", False):
                count(AuditKind.CACHE_SALT_APPLIED, "tenant_cache_salt", reason="tenant")
            else:
                # Not admitted by the engine core's gate (``hooks``): a salt nobody else has, so it shares nothing.
                request.cache_salt = isolated_salt()
                if getattr(request, "_block_hasher", None) is not None:
                    request.block_hashes = []
                    request.update_block_hashes()
                count(AuditKind.CACHE_SALT_APPLIED, "tenant_cache_salt", reason="isolated")
        if self.pccguard_plan.has("server_side_priority") and getattr(request, "priority", 0) != 0:
            request.priority = 0
            count(AuditKind.PRIORITY_OVERRIDDEN, "server_side_priority", reason="client_priority_ignored")
        super().add_request(request)  # type: ignore[misc]

    # ------------------------------------------------------------------ scheduling

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        self._pccguard_expire()
        self.pccguard_audit.maybe_flush()
        return super().schedule(*args, **kwargs)  # type: ignore[misc]

    def pccguard_count_refusal(self, reason: str) -> None:
        """Count a request the engine core's salt gate refused (``reason`` is a short code)."""
        self.pccguard_audit.count(AuditKind.REQUEST_REFUSED, "tenant_cache_salt", reason=f"salt_{reason}")

    def _pccguard_expire(self) -> None:
        ttl = self.pccguard_ttl
        if ttl is None or not ttl.expired_pending():
            return
        expired = ttl.sweep()
        if expired:
            audit_log().emit(
                AuditKind.PREFIX_EXPIRED, mitigation="prefix_cache_ttl", count=len(expired), unit="blocks"
            )

    def _get_new_block_ids_to_zero(self) -> list[int] | None:
        own: list[int] | None = super()._get_new_block_ids_to_zero()  # type: ignore[misc]
        if self.pccguard_scrub is None:
            return own
        ids, reasons = self.pccguard_scrub.drain()
        recent = self.pccguard_recently_zeroed
        if recent is not None:
            recent.append(frozenset(ids) if ids else _NONE)
        if not ids:
            return own
        for reason, n in reasons.items():
            self.pccguard_audit.count(
                AuditKind.KV_SCRUBBED, "scrub_freed_kv", n, unit="blocks", reason=reason
            )
        if own:
            seen = set(ids)
            ids += [i for i in own if i not in seen]
        return ids

    def has_requests(self) -> bool:
        if super().has_requests():  # type: ignore[misc]
            return True
        if self.pccguard_scrub is not None and self.pccguard_scrub.pending():
            return True
        if self.pccguard_ttl is not None and self.pccguard_ttl.expired_pending():
            return True
        # Going idle: nothing stays unaudited, and the next expiry will wake the engine.
        self.pccguard_audit.flush()
        self._pccguard_arm_timer()
        return False

    def reset_prefix_cache(self, *args: Any, **kwargs: Any) -> bool:
        ok = bool(super().reset_prefix_cache(*args, **kwargs))  # type: ignore[misc]
        if ok and self.pccguard_scrub is not None:
            self._pccguard_wake()
        return ok

    # ------------------------------------------------------------------ idle expiry

    def pccguard_set_waker(self, waker: Callable[[], None]) -> None:
        """How to wake the engine loop when it idles (the engine core sets this; see ``hooks``)."""
        self._pccguard_waker = waker
        self._pccguard_arm_timer()

    def _pccguard_wake(self) -> None:
        if self._pccguard_waker is not None:
            self._pccguard_waker()

    def _pccguard_arm_timer(self) -> None:
        """Wake an idle engine when the oldest cached prefix expires, so it is evicted and scrubbed on time."""
        ttl = self.pccguard_ttl
        if ttl is None or self._pccguard_waker is None:
            return
        expiry = ttl.next_expiry()
        if expiry is None or (self._pccguard_timer is not None and self._pccguard_timer.is_alive()):
            return
        delay = max(0.0, expiry - ttl.clock()) + 0.01
        timer = threading.Timer(delay, self._pccguard_on_timer)
        timer.daemon = True
        self._pccguard_timer = timer
        timer.start()

    def _pccguard_on_timer(self) -> None:
        self._pccguard_timer = None
        self._pccguard_wake()


def _salt_gate(vllm_config: Any, plan: RuntimePlan) -> SaltGate:
    """The gate of this engine core, with the key set the configuration carried from the ingress process."""
    keys = getattr(vllm_config, KEYS_ATTR, None)
    if keys is None:
        raise EnforcementError(
            "pccguard refuses to start vllm: tenant_cache_salt is planned but no salt keys reached the engine "
            "core (the configuration was not built through pccguard's hook)"
        )
    mode: Literal["single", "multi"] = "single" if plan.tenancy_mode == "single" else "multi"
    return SaltGate(keys=adopt_process_keys(keys), mode=mode, max_age=plan.salt_max_age)


class PccguardScheduler(PccguardSchedulerMixin, Scheduler):  # type: ignore[misc]
    """vLLM's ``Scheduler`` with pccguard's mitigations."""

    def __init__(self, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        Scheduler.__init__(self, vllm_config, *args, **kwargs)
        self._pccguard_setup(vllm_config)


class PccguardAsyncScheduler(PccguardSchedulerMixin, AsyncScheduler):  # type: ignore[misc]
    """vLLM's ``AsyncScheduler`` (async scheduling, the CUDA default) with pccguard's mitigations."""

    def __init__(self, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        AsyncScheduler.__init__(self, vllm_config, *args, **kwargs)
        self._pccguard_setup(vllm_config)


SCHEDULER_QUALNAME = f"{__name__}.PccguardScheduler"
ASYNC_SCHEDULER_QUALNAME = f"{__name__}.PccguardAsyncScheduler"
