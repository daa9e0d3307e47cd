"""``allowlist_logs``: the allowlist, the hook on ``logging.Logger.callHandlers``, and its canary self-test.

The hook is installed on the real ``logging`` module through the core patching
module (as both adapters install it) and taken off after each test; every
record goes through real loggers and handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pccguard.enforcement import log_allowlist
from pccguard.enforcement.audit import AuditAggregator, AuditEvent, AuditKind, AuditLog
from pccguard.enforcement.config import MitigationConfig
from pccguard.enforcement.log_allowlist import LogAllowlist, LogTemplate
from pccguard.enforcement.patching import Hook, HookTable, install, is_patched
from pccguard.enforcement.selftest import SelfTestFailed, run_check
from pccguard.facts.model import DeploymentFacts

CONTENT = "tests.allowlist.content"
OPS = "tests.allowlist.ops"
TEMPLATES = (LogTemplate(OPS, "served %d requests on %s"), LogTemplate(OPS, "Engine #: ready"))
PROMPT = "tell me the secret recipe"


class Recorder(logging.Handler):
    """A handler that records every message it is handed: prompts included, if any arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.exc: list[object] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.exc.append(record.exc_info)


@pytest.fixture
def hooked() -> Iterator[Recorder]:
    """The hook on the real ``logging``, a recording handler on the test loggers; all undone afterwards."""
    original = logging.Logger.__dict__["callHandlers"]
    install(HookTable("test", "0", (Hook(log_allowlist.TARGET, log_allowlist.call_handlers, "AROUND"),)))
    recorder = Recorder()
    loggers = [logging.getLogger(CONTENT), logging.getLogger(OPS)]
    for lg in loggers:
        lg.addHandler(recorder)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    try:
        yield recorder
    finally:
        log_allowlist.deactivate()
        for lg in loggers:
            lg.removeHandler(recorder)
        logging.Logger.callHandlers = original  # type: ignore[method-assign]


def _audit() -> tuple[AuditAggregator, list[AuditEvent]]:
    events: list[AuditEvent] = []
    return AuditAggregator(AuditLog("test", sinks=[events.append]), interval_s=0), events


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args or None, None)


# ---------------------------------------------------------------------- the allowlist


def test_own_records_and_allowlisted_templates_with_safe_arguments_pass() -> None:
    allowlist = LogAllowlist(TEMPLATES)
    assert allowlist.permits(_record("pccguard.audit", "%s", "anything at all"))
    assert allowlist.permits(_record("vllm.pccguard", "pccguard: %s", "a summary"))
    assert allowlist.permits(_record(OPS, "served %d requests on %s", 3, "127.0.0.1:8000"))
    assert allowlist.permits(_record(OPS + ".child", "served %d requests on %s", 3, "cpu"))
    # An f-string line with numbers matches its template once numbers are normalized.
    assert allowlist.permits(_record(OPS, "Engine 000: ready"))


def test_content_other_templates_and_other_loggers_are_withheld() -> None:
    allowlist = LogAllowlist(TEMPLATES)
    assert not allowlist.permits(_record(OPS, "served %d requests on %s", 3, PROMPT))  # text, not a token
    assert not allowlist.permits(_record(OPS, "served %d requests on %s", 3, "a" * 200))  # too long
    assert not allowlist.permits(_record(OPS, "served %d requests on %s", 3, ["list"]))  # not a scalar
    assert not allowlist.permits(_record(OPS, "Engine 000: ready " + PROMPT))
    assert not allowlist.permits(_record(CONTENT, "served %d requests on %s", 3, "cpu"))  # another logger
    assert not allowlist.permits(_record(OPS + "x", "served %d requests on %s", 3, "cpu"))  # not a child
    assert not allowlist.permits(_record("pccguardx", "%s", "x"))  # not pccguard's logger
    assert not allowlist.permits(_record(CONTENT, "Received: %s", PROMPT))


def test_the_operators_records_join_the_engines() -> None:
    settings = MitigationConfig.model_validate(
        {"log_allowlist": [{"logger": CONTENT, "message": "batch %d done"}]}
    )
    allowlist = log_allowlist.allowlist_for(TEMPLATES, settings)
    assert allowlist.permits(_record(CONTENT, "batch %d done", 7))
    assert allowlist.permits(_record("uvicorn.error", "Application startup complete."))
    assert not allowlist.permits(_record(CONTENT, "batch %d done: %s", 7, PROMPT))


@pytest.mark.parametrize(
    "entry", [{"logger": "bad logger", "message": "x"}, {"logger": "a", "message": ""}, {"logger": "a"}]
)
def test_a_malformed_operator_record_is_refused(entry: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        MitigationConfig.model_validate({"log_allowlist": [entry]})


@pytest.mark.parametrize(
    ("tracing", "usage", "offered"),
    [
        (False, False, True),
        (True, False, False),
        (False, True, False),
        (None, False, False),
        (False, None, False),
    ],
)
def test_offered_only_where_traces_and_usage_statistics_stay_in(
    tracing: bool | None, usage: bool | None, offered: bool
) -> None:
    facts = DeploymentFacts.model_validate(
        {
            "deployment": {"engine": "vllm"},
            "observability": {"tracing": {"enabled": tracing}, "usage_stats": {"enabled": usage}},
        }
    )
    assert log_allowlist.offered(facts) is offered


# ---------------------------------------------------------------------- the hook


def test_before_the_mitigation_the_prompt_reaches_the_handler_and_after_it_does_not(hooked: Recorder) -> None:
    assert is_patched(log_allowlist.TARGET, log_allowlist.call_handlers)
    logging.getLogger(CONTENT).info("Received: %s", PROMPT)
    assert hooked.lines == [f"Received: {PROMPT}"]  # the positive control: the handler records prompts
    audit, events = _audit()
    log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
    logging.getLogger(CONTENT).info("Received: %s", PROMPT)
    logging.getLogger(CONTENT).error(f"Finished: {PROMPT}")
    logging.getLogger(OPS).info("served %d requests on %s", 2, "cpu")
    assert hooked.lines == [f"Received: {PROMPT}", "served 2 requests on cpu"]
    withheld = [e for e in events if e.kind == AuditKind.LOG_WITHHELD]
    assert sum(e.count for e in withheld) == 2 and {e.reason for e in withheld} == {CONTENT}
    assert all(PROMPT not in e.model_dump_json() for e in events)
    assert log_allowlist.withheld()[CONTENT] >= 2


def test_a_passing_record_loses_its_traceback(hooked: Recorder) -> None:
    audit, _ = _audit()
    log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
    try:
        raise ValueError(PROMPT)
    except ValueError:
        logging.getLogger(OPS).exception("served %d requests on %s", 1, "cpu")
    assert hooked.lines == ["served 1 requests on cpu"] and hooked.exc == [None]


def test_a_failing_audit_sink_does_not_break_logging_and_is_counted(hooked: Recorder) -> None:
    def broken(reason: str) -> None:
        raise RuntimeError("sink down")

    log_allowlist.activate(LogAllowlist(TEMPLATES), broken)
    before = log_allowlist._ACTIVE.sink_errors
    logging.getLogger(CONTENT).info("Received: %s", PROMPT)
    assert hooked.lines == [] and log_allowlist._ACTIVE.sink_errors == before + 1


def test_activate_refuses_anything_but_an_allowlist() -> None:
    with pytest.raises(TypeError):
        log_allowlist.activate(TEMPLATES)  # type: ignore[arg-type]


def test_reason_codes_are_identifiers() -> None:
    assert log_allowlist.reason_code("sglang.srt.utils.request_logger.file./tmp/x y.host_0") == (
        "sglang.srt.utils.request_logger.file._tmp_x_y.host_0"
    )
    assert len(log_allowlist.reason_code("a" * 100)) == 64


# ---------------------------------------------------------------------- the self-test


def _engine_request_logger(canary: str) -> None:
    """Stands for an engine's request logger: it logs the prompt the way engines do."""
    logging.getLogger(CONTENT).info("Received request: prompt=%r", canary)


def _check() -> log_allowlist.Check:
    return log_allowlist.log_canary_check({"request logger": _engine_request_logger}, lambda: [CONTENT])


def test_the_canary_check_passes_with_the_allowlist_applied(hooked: Recorder) -> None:
    audit, _ = _audit()
    log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
    evidence = _check()()
    assert "left no canary" in evidence.checked and "2 record(s) withheld" in evidence.checked
    assert not any("pccguard-log-canary" in line for line in hooked.lines)


def test_the_control_without_the_allowlist_reports_the_canary_it_let_through(hooked: Recorder) -> None:
    record = run_check("allowlist_logs", _check())
    assert not record.passed and "reached a log handler in 2 record(s)" in record.found
    assert "not applied" in record.found
    assert any("pccguard-log-canary" in line for line in hooked.lines)


def test_an_allowlist_that_does_not_apply_is_caught(
    hooked: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit, _ = _audit()
    log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
    monkeypatch.setattr(LogAllowlist, "permits", lambda self, record: True)
    record = run_check("allowlist_logs", _check())
    assert not record.passed and "reached a log handler in" in record.found
    assert any("pccguard-log-canary" in line for line in hooked.lines)  # the leak the check caught


def test_a_logger_that_delivers_around_the_hook_is_caught(hooked: Recorder) -> None:
    class DirectLogger(logging.Logger):
        """Hands records straight to its handlers (as some logging libraries do)."""

        def callHandlers(self, record: logging.LogRecord) -> None:
            for handler in self.handlers:
                handler.handle(record)

    audit, _ = _audit()
    log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
    manager = logging.Logger.manager
    name = "tests.allowlist.direct"
    direct = DirectLogger(name)
    direct.addHandler(hooked)
    manager.loggerDict[name] = direct
    try:
        record = run_check("allowlist_logs", _check())
        assert not record.passed and name in record.found and "around the allowlist" in record.found
        direct.info("Received: %s", PROMPT)
        assert hooked.lines[-1] == f"Received: {PROMPT}"  # what it would have let out
    finally:
        del manager.loggerDict[name]


def test_a_check_whose_canary_never_reached_logging_fails(hooked: Recorder) -> None:
    audit, _ = _audit()
    log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
    vacuous = run_check("allowlist_logs", log_allowlist.log_canary_check({}, lambda: []))
    assert not vacuous.passed and "no content logger" in vacuous.found

    def raises(canary: str) -> None:
        raise RuntimeError("request logger broke")

    record = run_check("allowlist_logs", log_allowlist.log_canary_check({"x": raises}, lambda: [CONTENT]))
    assert not record.passed and "request logger broke" in record.found


def test_the_capture_must_see_the_marker(hooked: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    audit, _ = _audit()
    log_allowlist.apply(TEMPLATES, MitigationConfig(), audit)
    monkeypatch.setattr(LogAllowlist, "permits", lambda self, record: False)  # withholds the marker too
    with pytest.raises(SelfTestFailed, match="saw no allowlisted record"):
        _check()()
