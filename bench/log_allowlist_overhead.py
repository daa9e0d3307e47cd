"""What ``allowlist_logs`` costs: per log record, and its start-time self-test on vLLM's request logger.

Per record: one logger with one handler (a ``StreamHandler`` on an in-memory
stream, so formatting runs as a real handler's would), each round logging the
same records without the hook, with the hook passing records through
(installed, not applied: every process carries it), with the allowlist applied
to an allowlisted record (it passes), and to a request-logger record (withheld
and counted). Arms interleave within each round, in rotating order; the ratio
to the no-hook arm is paired per round. The self-test is
``log_canary_check`` through vLLM's real ``RequestLogger``, timed over several
runs. Run with ``.venv-vllm/bin/python bench/log_allowlist_overhead.py``.
"""

from __future__ import annotations

import io
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import paired_ratio, print_table
from pccguard.enforcement import log_allowlist
from pccguard.enforcement.audit import AuditAggregator, AuditLog
from pccguard.enforcement.config import MitigationConfig
from pccguard.enforcement.log_allowlist import LogTemplate
from pccguard.enforcement.patching import Hook, HookTable, install

ROUNDS = 30
RECORDS = 2000
OPS = "bench.ops"
CONTENT = "bench.content"
TEMPLATES = (LogTemplate(OPS, "served %d requests on %s"),)


def _logger(name: str, stream: io.StringIO) -> logging.Logger:
    lg = logging.getLogger(name)
    lg.handlers[:] = [logging.StreamHandler(stream)]
    lg.setLevel(logging.INFO)
    lg.propagate = False
    return lg


def _time(emit: object, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        emit(i)  # type: ignore[operator]
    return (time.perf_counter() - started) / n


def main() -> None:
    stream = io.StringIO()
    ops, content = _logger(OPS, stream), _logger(CONTENT, stream)
    original = logging.Logger.__dict__["callHandlers"]
    hooked = None
    events: list[object] = []
    audit = AuditAggregator(AuditLog("bench", sinks=[events.append]))

    def allowed(i: int) -> None:
        ops.info("served %d requests on %s", i, "cpu")

    def withheld(i: int) -> None:
        content.info("Received request: prompt=%r", "a prompt of some length, as a user would write it")

    def arm(name: str) -> float:
        nonlocal hooked
        stream.seek(0)
        stream.truncate()
        if name == "no hook":
            logging.Logger.callHandlers = original  # type: ignore[method-assign]
            return _time(allowed, RECORDS)
        if hooked is None:
            install(
                HookTable("bench", "0", (Hook(log_allowlist.TARGET, log_allowlist.call_handlers, "AROUND"),))
            )
            hooked = logging.Logger.__dict__["callHandlers"]
        logging.Logger.callHandlers = hooked  # type: ignore[method-assign]
        if name == "hook, not applied":
            log_allowlist.deactivate()
            return _time(allowed, RECORDS)
        log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
        seconds = _time(allowed if name == "applied, allowlisted record" else withheld, RECORDS)
        log_allowlist.deactivate()
        return seconds

    arms = ["no hook", "hook, not applied", "applied, allowlisted record", "applied, withheld record"]
    times: dict[str, list[float]] = {a: [] for a in arms}
    for r in range(ROUNDS):
        order = arms[r % len(arms) :] + arms[: r % len(arms)]
        for a in order:
            times[a].append(arm(a))
    logging.Logger.callHandlers = original  # type: ignore[method-assign]

    rows = []
    for a in arms:
        median = statistics.median(times[a]) * 1e6
        if a == "no hook":
            rows.append((a, f"{median:.2f}", "1 (baseline)"))
            continue
        ratio, low, high = paired_ratio(list(zip(times[a], times["no hook"], strict=True)))
        rows.append((a, f"{median:.2f}", f"{ratio:.3f} [{low:.3f}, {high:.3f}]"))
    print_table(
        f"allowlist_logs per log record ({ROUNDS} interleaved rounds of {RECORDS} records)",
        ["arm", "µs per record (median)", "ratio to no hook, 95% CI"],
        rows,
    )
    selftest()


def selftest() -> None:
    """The start-time self-test through vLLM's real ``RequestLogger`` (the hook installed and applied)."""
    try:
        from pccguard.adapters.vllm.runtime import hooks, logs
    except ImportError:
        print("vLLM is not installed here: the self-test timing needs .venv-vllm")
        return
    hooks.install_frontend_check()
    logs.apply_if_installed(("allowlist_logs",))
    check = logs.canary_check()
    check()  # warm: imports vLLM's request logger and SamplingParams
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        evidence = check()
        runs.append(time.perf_counter() - started)
    log_allowlist.deactivate()
    print_table(
        "allowlist_logs start-time self-test, vLLM RequestLogger (20 runs)",
        ["measure", "value"],
        [
            ("median", f"{statistics.median(runs) * 1e3:.2f} ms"),
            ("max", f"{max(runs) * 1e3:.2f} ms"),
            ("live loggers checked", evidence.checked.rsplit(";", 1)[-1].split()[0]),
        ],
    )


if __name__ == "__main__":
    main()
