"""``cache_agnostic_scheduling``: queue order never depends on what the prefix cache holds.

Under ``lpm``, ``dfs-weight``, ``hrrn`` and ``shortest-prefill-first`` SGLang
sorts the waiting queue by prefix matches against the cache and against the
other waiting requests, so the order a tenant's requests are served in reveals
whether its guesses match another tenant's prompt (PromptPeek). With this
mitigation the policy ``SchedulePolicy`` validates is replaced by FCFS; the
salts of ``tenant_cache_salt`` would already confine matches to one tenant.
"""

from __future__ import annotations

from typing import Any

from pccguard.enforcement.audit import AuditKind

from . import targets
from .state import STATE

MITIGATION = "cache_agnostic_scheduling"


def _after_validate(result: Any, policy_obj: Any, policy: str, *args: Any, **kwargs: Any) -> Any:
    from sglang.srt.managers.schedule_policy import CacheAgnosticPolicy, CacheAwarePolicy

    if not STATE.active(MITIGATION) or not isinstance(result, CacheAwarePolicy):
        return None
    STATE.count(AuditKind.OPTION_REFUSED, MITIGATION, 1, "options", reason="cache_aware_policy")
    STATE.flush()
    return CacheAgnosticPolicy.FCFS


HOOKS = [(targets.POLICY_VALIDATE, _after_validate, "AFTER")]
