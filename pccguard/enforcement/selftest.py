"""Start-time self-tests: a mitigation counts as enforced only once the running engine has shown it works.

Installing a mitigation proves nothing about the hardware that serves: vLLM
zeroes blocks through a Triton kernel on a GPU and a ``memset`` on the CPU,
SGLang frees through allocators per device, offload runs through a worker.
Each adapter therefore declares, per mitigation it can install, one check that
exercises the mitigation on the live engine objects (the KV tensors on their
device and every rank, the real block pool or allocator, the real offload
path, the real ASGI app) and returns :class:`Evidence` of what it exercised,
or raises :class:`SelfTestFailed` saying what it found. This module runs the
checks, times them, records them as facts (``runtime.mitigations_verified``,
``runtime.selftests``) and refuses the start when any installed mitigation is
not proven:

* a check that fails, or raises anything at all, refuses the start with one
  line naming the mitigation and what was found -- whatever ``fail_mode``
  says, since a mitigation that does not work is a deny, not a pccguard error;
* an installed mitigation without a check refuses too: nothing is enforced on
  faith.

The same checks run with pccguard's mitigations off (:func:`run_checks`): that
is the control, which reports the residue the mitigations exist to remove.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from pccguard.enforcement.audit import AuditKind, AuditLog
from pccguard.errors import EnforcementError
from pccguard.facts.model import DeploymentFacts, SelfTestRecord

logger = logging.getLogger("pccguard.selftest")

#: The self-tests may take this long at least, or this share of the engine's own start, whichever is larger.
BUDGET_FLOOR_SECONDS = 2.0
BUDGET_SHARE = 0.02


@dataclass(frozen=True)
class Evidence:
    """What a passing check exercised: one line, and how much of the engine it covered."""

    checked: str
    blocks: int = 0
    layers: int = 0
    ranks: int = 0
    device: str | None = None


class SelfTestFailed(Exception):
    """Raised by a check whose mitigation did not hold; the message says what was found (no data, no secrets)."""


#: A check: exercise one mitigation on the live engine and return what was exercised.
Check = Callable[[], Evidence]
#: The same, for a check that runs on the event loop of an ASGI app's start-up.
AsyncCheck = Callable[[], Awaitable[Evidence]]


def process_age_seconds() -> float | None:
    """Seconds since this process started (``psutil``, a dependency of both engines); None if unknown.

    What an engine's start cost before the plugin could time it (spawn, imports,
    platform set-up). Unknown means the budget's 2 s floor, never a longer one.
    """
    try:
        import psutil

        return max(0.0, time.time() - float(psutil.Process().create_time()))
    except Exception:  # no psutil, or no process table
        return None


def on_loop(check: Check) -> AsyncCheck:
    """``check`` as an :data:`AsyncCheck`, for a boundary that runs its self-tests on the app's event loop."""

    async def run() -> Evidence:
        return check()

    return run


def budget_seconds(engine_start_seconds: float | None) -> float:
    """How long the self-tests of a start may take: 2 s, or 2% of the engine's own start if that is longer."""
    share = BUDGET_SHARE * engine_start_seconds if engine_start_seconds else 0.0
    return max(BUDGET_FLOOR_SECONDS, share)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


def run_check(mitigation: str, check: Check) -> SelfTestRecord:
    """Run one check; any exception is a failure that names it (never a pass, never a skip)."""
    started = time.perf_counter()
    try:
        evidence: object = check()
    except Exception as exc:  # fail closed: an error in a check is a failed check
        return record_of(mitigation, started, exc)
    return record_of(mitigation, started, evidence)


async def run_check_async(mitigation: str, check: AsyncCheck) -> SelfTestRecord:
    """:func:`run_check` for a check that runs on an event loop (an ASGI app's start-up)."""
    started = time.perf_counter()
    try:
        evidence: object = await check()
    except Exception as exc:  # fail closed
        return record_of(mitigation, started, exc)
    return record_of(mitigation, started, evidence)


def record_of(mitigation: str, started: float, outcome: object) -> SelfTestRecord:
    """The record of a check that returned ``outcome`` (its evidence, or the exception it raised)."""
    seconds = time.perf_counter() - started

    def failed(found: str) -> SelfTestRecord:
        return SelfTestRecord(mitigation=mitigation, passed=False, checked="", found=found, seconds=seconds)

    if isinstance(outcome, SelfTestFailed):
        return failed(_one_line(str(outcome)) or "the check failed")
    if isinstance(outcome, BaseException):
        return failed(_one_line(f"error: {type(outcome).__name__}: {outcome}"))
    if not isinstance(outcome, Evidence) or not outcome.checked:
        return failed("the check returned no evidence of what it exercised")
    return SelfTestRecord(
        mitigation=mitigation,
        passed=True,
        checked=_one_line(outcome.checked),
        blocks=outcome.blocks,
        layers=outcome.layers,
        ranks=outcome.ranks,
        device=outcome.device,
        seconds=seconds,
    )


def missing_check(mitigation: str) -> SelfTestRecord:
    return SelfTestRecord(
        mitigation=mitigation,
        passed=False,
        checked="",
        found="no self-test exists for this mitigation on this engine",
    )


def run_checks(checks: Mapping[str, Check], mitigations: Iterable[str]) -> list[SelfTestRecord]:
    """Run the checks of ``mitigations`` in order, without refusing anything (the control, and the gate's input).

    A mitigation without a check gets a failed record saying so.
    """
    records: list[SelfTestRecord] = []
    for mitigation in sorted(set(mitigations)):
        check = checks.get(mitigation)
        records.append(missing_check(mitigation) if check is None else run_check(mitigation, check))
    return records


async def run_checks_async(
    checks: Mapping[str, AsyncCheck], mitigations: Iterable[str]
) -> list[SelfTestRecord]:
    """:func:`run_checks` for checks that run on an event loop."""
    records: list[SelfTestRecord] = []
    for mitigation in sorted(set(mitigations)):
        check = checks.get(mitigation)
        records.append(
            missing_check(mitigation) if check is None else await run_check_async(mitigation, check)
        )
    return records


@dataclass(frozen=True)
class SelfTestOutcome:
    """Every installed mitigation's record, how long they took together, and the budget they had."""

    records: list[SelfTestRecord]
    seconds: float
    budget: float

    @property
    def verified(self) -> list[str]:
        return sorted(r.mitigation for r in self.records if r.passed)

    def summary(self) -> str:
        """One line for the start log: what was proven, with its coverage."""
        parts = []
        for r in self.records:
            cover = [
                f"{n} {unit}"
                for n, unit in ((r.blocks, "blocks"), (r.layers, "layers"), (r.ranks, "ranks"))
                if n
            ]
            where = f" on {r.device}" if r.device else ""
            parts.append(f"{r.mitigation}{' (' + ', '.join(cover) + ')' if cover else ''}{where}")
        return (
            f"{len(self.records)} self-test(s) passed in {self.seconds:.3f} s: {'; '.join(parts) or 'none'}"
        )


def require_verified(
    engine: str,
    checks: Mapping[str, Check],
    installed: Iterable[str],
    audit: AuditLog,
    *,
    engine_start_seconds: float | None = None,
) -> SelfTestOutcome:
    """Prove every installed mitigation on the live engine, or refuse the start naming the first that failed.

    Runs before the engine accepts a request. Each passing check is audited
    (``selftest_passed``); a failure is audited (``startup_refused``,
    reason ``selftest_failed``) and raised as ``EnforcementError``. Over the
    time budget, the start goes on with a warning: the budget is a cost
    target, not a safety property.
    """
    started = time.perf_counter()
    records = run_checks(checks, installed)
    return gate(engine, records, time.perf_counter() - started, audit, engine_start_seconds)


def gate(
    engine: str,
    records: list[SelfTestRecord],
    seconds: float,
    audit: AuditLog,
    engine_start_seconds: float | None = None,
) -> SelfTestOutcome:
    """Refuse the start unless every record passed (the decision of :func:`require_verified`, for any runner)."""
    failed = [r for r in records if not r.passed]
    if failed:
        first = failed[0]
        audit.emit(
            AuditKind.STARTUP_REFUSED,
            mitigation=first.mitigation,
            reason="selftest_failed",
            count=len(failed),
        )
        more = (
            f" (and {len(failed) - 1} more: {', '.join(r.mitigation for r in failed[1:])})"
            if failed[1:]
            else ""
        )
        raise EnforcementError(
            f"pccguard refuses to start {engine}: self-test of {first.mitigation} failed: {first.found}{more}"
        )
    for record in records:  # one per passed self-test (what it covered is in the record and the facts)
        audit.emit(AuditKind.SELFTEST_PASSED, mitigation=record.mitigation)
    outcome = SelfTestOutcome(records=records, seconds=seconds, budget=budget_seconds(engine_start_seconds))
    if seconds > outcome.budget:
        logger.warning(
            "pccguard self-tests took %.3f s, over their budget of %.3f s", seconds, outcome.budget
        )
    return outcome


def verified_facts(facts: DeploymentFacts, records: Iterable[SelfTestRecord]) -> DeploymentFacts:
    """``facts`` with what the self-tests proved: only passing records verify a mitigation."""
    kept = list(records)
    runtime = facts.runtime.model_copy(
        update={
            "mitigations_verified": sorted({r.mitigation for r in kept if r.passed}),
            "selftests": kept,
        }
    )
    return facts.model_copy(update={"runtime": runtime})
