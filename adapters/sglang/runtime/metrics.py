"""pccguard's metrics route on SGLang: the HTTP server's counters and every scheduler's.

The events the route serves mostly happen in the scheduler processes (residue
found in free KV, the scheduler self-tests), so each scheduler adds its
counters of the served kinds to SGLang's own internal-state answer
(``Scheduler.get_internal_state``, the request behind ``/get_server_info``),
and the HTTP server collects them per scrape through the tokenizer manager,
one answer per data-parallel rank (:func:`read_counters`). Only the served
kinds travel (:data:`pccguard.enforcement.guarantee_metrics.KINDS`): no
traffic count reaches ``/get_server_info``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pccguard.enforcement.guarantee_metrics import CounterError, served

from . import targets
from .state import STATE

#: Where a scheduler's counters ride in its internal state.
STATE_KEY = "pccguard_counters"


def served_counters() -> dict[str, int]:
    """This process's audit counters of the served kinds."""
    return served(STATE.counters())


def _after_internal_state(result: Any, scheduler: Any, *args: Any, **kwargs: Any) -> None:
    result.internal_state[STATE_KEY] = served_counters()
    return None


async def read_counters(app: Any) -> list[Mapping[str, int]]:
    """The HTTP server's counters and each scheduler's; a scheduler that answers none fails the scrape."""
    from sglang.srt.entrypoints.http_server import get_global_state

    states = await get_global_state().tokenizer_manager.get_internal_state()
    found = [state.get(STATE_KEY) if isinstance(state, Mapping) else None for state in states]
    if not found or any(not isinstance(counters, Mapping) for counters in found):
        raise CounterError("a scheduler answered its internal state without pccguard's counters")
    return [served_counters(), *(counters for counters in found if isinstance(counters, Mapping))]


HOOKS = [(targets.SCHEDULER_INTERNAL_STATE, _after_internal_state, "AFTER")]
