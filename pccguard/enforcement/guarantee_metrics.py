"""pccguard's own metrics: whether the guarantees hold, served by the tenant boundary in both engines.

Residue found in free KV, a sealed page that failed its integrity check, a
refused start, the self-tests that passed: an operator alerts on these, so they
are Prometheus counters, served at :data:`PATH` by the shared boundary in
front of either engine's app (its own ``/metrics`` may be off, or filtered,
and shows nothing of pccguard). The events happen in the engine's other
processes (vLLM's engine core, SGLang's schedulers), so each adapter supplies
a reader that collects every process's audit counters; this module sums them
and writes the exposition.

Only the kinds in :data:`KINDS` are served: they say whether a guarantee
held, not how busy the server is. Counters of salted requests, scrubbed
blocks or withheld log records would let anyone who reads the route before
and after a probe count other tenants' traffic; they stay in the audit log.
The route needs no tenant and carries no tenant, key or content. A reader that
fails answers 503: a scrape that cannot be read is a failed scrape, never a
page of zeros.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

#: Where the boundary serves the counters (``GET``), in both engines.
PATH = "/.well-known/pccguard/metrics"
#: The one family: ``pccguard_guarantee_events_total{kind, mitigation}``.
FAMILY = "pccguard_guarantee_events"
#: Audit kinds served: whether a guarantee held, never a traffic count.
KINDS = frozenset(
    {
        "residue_found",
        "offload_integrity_failure",
        "startup_refused",
        "selftest_passed",
        "mitigation_installed",
    }
)
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_LABEL = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")

#: Given the live app, every process's audit counters (``{"kind/mitigation": n}``), for one scrape.
CounterReader = Callable[[Any], Awaitable[list[Mapping[str, int]]]]


class CounterError(ValueError):
    """A process answered counters that are not counters: the scrape fails."""


def served(counters: Mapping[str, int]) -> dict[str, int]:
    """Those of an audit log's counters (``kind/mitigation``) whose kind the route serves."""
    return {name: n for name, n in counters.items() if name.partition("/")[0] in KINDS}


def merged(parts: Iterable[Mapping[str, int]]) -> dict[tuple[str, str], int]:
    """The served counters, summed over processes: ``{(kind, mitigation): total}`` for :data:`KINDS`.

    Keys are the audit log's ``kind/mitigation`` names (``-`` for none);
    anything else -- a key without its two parts, a label that is not an
    identifier, a count that is not a non-negative integer -- raises.
    """
    totals: dict[tuple[str, str], int] = {}
    for part in parts:
        if not isinstance(part, Mapping):
            raise CounterError("a process answered something other than a mapping of counters")
        for name, count in part.items():
            kind, sep, mitigation = str(name).partition("/")
            if not sep or not _LABEL.match(kind) or not _LABEL.match(mitigation):
                raise CounterError(f"malformed counter name {str(name)[:80]!r}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise CounterError(f"counter {name} is not a non-negative integer")
            if kind in KINDS:
                totals[(kind, mitigation)] = totals.get((kind, mitigation), 0) + count
    return totals


def exposition(totals: Mapping[tuple[str, str], int]) -> bytes:
    """Prometheus text exposition (format 0.0.4) of ``totals``; every served kind appears, at 0 if none."""
    lines = [
        f"# HELP {FAMILY}_total pccguard events that say whether a guarantee held, summed over the engine's "
        "processes since start",
        f"# TYPE {FAMILY}_total counter",
    ]
    seen = {kind for kind, _ in totals}
    rows = dict(totals)
    for kind in KINDS - seen:
        rows[(kind, "-")] = 0
    for (kind, mitigation), count in sorted(rows.items()):
        lines.append(f'{FAMILY}_total{{kind="{kind}",mitigation="{mitigation}"}} {count}')
    return ("\n".join(lines) + "\n").encode("utf-8")
