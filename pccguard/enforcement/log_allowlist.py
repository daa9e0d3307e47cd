"""``allowlist_logs``: only allowlisted log records reach a handler, in every process the plugin runs in.

PCC lets "only pre-specified, structured logs and metrics" leave a node.
Both engines log request content through ordinary Python logging: vLLM's
``RequestLogger`` (the sampling parameters, the output text), SGLang's
``RequestLogger`` targets (the whole request and its output). The one call
between a record and every handler of every logger -- the root logger,
propagating loggers, loggers with ``propagate=False`` and handlers of their
own, ``logging.lastResort`` -- is ``logging.Logger.callHandlers``. Both
adapters wrap it once (:data:`TARGET`, in their hook tables, proven like every
other hook), so a handler added later (uvicorn's logging configuration,
SGLang's request-log targets, an operator's file handler) is covered too.

What reaches the handlers (:meth:`LogAllowlist.permits`):

* records of pccguard's own loggers (:data:`OWN_LOGGERS`), written to carry
  identifiers and counts only -- the audit records among them;
* records whose logger and message template the allowlist names, and whose
  every argument is a number, a boolean, ``None`` or a short token without
  spaces (:data:`SAFE_ARGUMENT`). Templates match after every number is
  replaced by ``#``, so a line an engine formats itself (an f-string with
  counts) matches its template while one with any other text does not.

Everything else is withheld, and so is the traceback of a record that passes
(an exception's message may quote a request). A withheld record is counted
per logger and leaves as a ``log_withheld`` audit record at the shared audit
rate: the logger's name and a count, never the content.

:func:`log_canary_check` is the mitigation's self-test: a canary request
through the engine's own request-logging code, and records with the canary
put straight into the engine's content loggers, must leave no canary in what
the handlers receive.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pccguard.enforcement.audit import AuditAggregator, AuditKind
from pccguard.enforcement.config import MitigationConfig
from pccguard.enforcement.patching import carries
from pccguard.enforcement.selftest import Check, Evidence, SelfTestFailed
from pccguard.facts.model import DeploymentFacts

MITIGATION = "allowlist_logs"
#: The function every record passes on its way to the handlers of its logger and its parents.
TARGET = "logging.Logger.callHandlers"
#: Loggers whose records always pass: pccguard's own (the vLLM adapter logs under ``vllm.`` to use vLLM's handler).
OWN_LOGGERS = ("pccguard", "vllm.pccguard")
#: An argument an allowlisted template may carry: a short token, no spaces, no quotes, no query string.
SAFE_ARGUMENT = re.compile(r"^[A-Za-z0-9_.,:/@\[\]\-]{0,128}$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: A logger name as an audit reason code (``IDENT_PATTERN``).
_REASON_CHARS = re.compile(r"[^A-Za-z0-9_.:\-]")


_OWN, _TEMPLATE, _NEITHER = object(), object(), object()
#: How many (logger, message) judgements are kept before the memo starts over.
_KNOWN_MAX = 4096


def normalize(message: str) -> str:
    """A message template with every number replaced by ``#`` (what allowlist entries are compared on)."""
    return _NUMBER.sub("#", message)


@dataclass(frozen=True)
class LogTemplate:
    """One allowlisted record: its logger (that name or a child of it) and its message template."""

    logger: str
    message: str


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _safe(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and SAFE_ARGUMENT.match(value) is not None


class LogAllowlist:
    """Which records may reach a handler: pccguard's own, and allowlisted templates with safe arguments."""

    def __init__(self, templates: Iterable[LogTemplate], own: Sequence[str] = OWN_LOGGERS) -> None:
        self.own = tuple(own)
        #: What (logger, message) pairs were judged, so a repeated record costs one lookup.
        self._known: dict[tuple[str, str], object] = {}
        self._by_message: dict[str, tuple[str, ...]] = {}
        for template in templates:
            key = normalize(template.message)
            self._by_message[key] = (*self._by_message.get(key, ()), template.logger)

    def __len__(self) -> int:
        return sum(len(loggers) for loggers in self._by_message.values())

    def permits(self, record: logging.LogRecord) -> bool:
        name, msg = record.name, record.msg
        if not isinstance(msg, str):
            return self._own(name)
        key = (name, msg)
        known = self._known.get(key)
        if known is None:
            known = self._judge(name, msg)
            if len(self._known) >= _KNOWN_MAX:  # f-string lines are all different: stay bounded
                self._known.clear()
            self._known[key] = known
        if known is not _TEMPLATE:
            return known is _OWN
        args = record.args
        values: Iterable[object] = args.values() if isinstance(args, Mapping) else (args or ())
        return all(_safe(value) for value in values)

    def _own(self, name: str) -> bool:
        return any(_under(name, prefix) for prefix in self.own)

    def _judge(self, name: str, msg: str) -> object:
        """Whose record this is: pccguard's own, an allowlisted template's (arguments still to check), or neither."""
        if self._own(name):
            return _OWN
        loggers = self._by_message.get(normalize(msg))
        if loggers is not None and any(_under(name, prefix) for prefix in loggers):
            return _TEMPLATE
        return _NEITHER


#: uvicorn's own lines, the same in both engines' HTTP servers (its access line carries the path without
#: the query string, which :data:`SAFE_ARGUMENT` refuses anyway).
UVICORN_TEMPLATES = (
    LogTemplate("uvicorn.error", "Started server process [%d]"),
    LogTemplate("uvicorn.error", "Waiting for application startup."),
    LogTemplate("uvicorn.error", "Application startup complete."),
    LogTemplate("uvicorn.error", "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)"),
    LogTemplate("uvicorn.error", "Shutting down"),
    LogTemplate("uvicorn.error", "Waiting for application shutdown."),
    LogTemplate("uvicorn.error", "Application shutdown complete."),
    LogTemplate("uvicorn.error", "Finished server process [%d]"),
    LogTemplate("uvicorn.access", '%s - "%s %s HTTP/%s" %d'),
)


def allowlist_for(engine: Iterable[LogTemplate], settings: MitigationConfig) -> LogAllowlist:
    """The allowlist of a start: uvicorn's lines, the engine adapter's, and the operator's (``log_allowlist``)."""
    extra = [LogTemplate(t.logger, t.message) for t in settings.log_allowlist]
    return LogAllowlist([*UVICORN_TEMPLATES, *engine, *extra])


def offered(facts: DeploymentFacts) -> bool:
    """Whether ``allowlist_logs`` can stand for every rule that asks for it here.

    It governs log records only. PCC-P-010 and PCC-P-011 ask for it too, for
    request traces and usage statistics, which leave the process another way:
    where either may be on, the mitigation is not offered, so those rules keep
    failing instead of reading as enforced.
    """
    obs = facts.observability
    return obs.tracing.enabled is False and obs.usage_stats.enabled is False


def apply(engine: Iterable[LogTemplate], settings: MitigationConfig, audit: AuditAggregator) -> LogAllowlist:
    """Build this start's allowlist and apply it in this process; withheld records are counted in ``audit``."""
    allowlist = allowlist_for(engine, settings)

    def counted(reason: str) -> None:
        audit.count(AuditKind.LOG_WITHHELD, MITIGATION, 1, "records", reason)

    activate(allowlist, counted)
    return allowlist


# ---------------------------------------------------------------------- the hook


class _Active:
    """What the hook applies in this process; ``allowlist`` is ``None`` until the mitigation is installed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.allowlist: LogAllowlist | None = None
        self.on_withheld: Callable[[str], None] | None = None
        self.withheld: Counter[str] = Counter()
        self.sink_errors = 0


_ACTIVE = _Active()
_inside = threading.local()


def call_handlers(original: Callable[..., Any], logger: logging.Logger, record: logging.LogRecord) -> Any:
    """The hook on :data:`TARGET`: hand ``record`` on only if the allowlist permits it (AROUND)."""
    allowlist = _ACTIVE.allowlist
    if allowlist is None:
        return original(logger, record)
    try:
        permitted = allowlist.permits(record)
    except Exception:  # a record the allowlist cannot judge is withheld
        permitted = False
    if permitted:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return original(logger, record)
    _withhold(record.name)
    return None


def _withhold(name: str) -> None:
    with _ACTIVE.lock:
        _ACTIVE.withheld[name] += 1
    sink = _ACTIVE.on_withheld
    if sink is None or getattr(_inside, "active", False):
        return
    _inside.active = True
    try:
        sink(reason_code(name))
    except Exception:  # a log call must not raise; the count above is kept and the error is reported
        with _ACTIVE.lock:
            _ACTIVE.sink_errors += 1
    finally:
        _inside.active = False


def reason_code(logger_name: str) -> str:
    """A logger's name as an audit reason code (identifier characters, at most 64)."""
    return _REASON_CHARS.sub("_", logger_name)[:64] or "-"


def activate(allowlist: LogAllowlist, on_withheld: Callable[[str], None] | None = None) -> None:
    """Apply ``allowlist`` in this process from now on; ``on_withheld`` gets each withheld record's logger."""
    if not isinstance(allowlist, LogAllowlist):
        raise TypeError("allowlist_logs needs a LogAllowlist")
    _ACTIVE.on_withheld = on_withheld
    _ACTIVE.allowlist = allowlist


def deactivate() -> None:
    """Stop applying the allowlist (an engine started without the mitigation, and tests)."""
    _ACTIVE.allowlist = None
    _ACTIVE.on_withheld = None


def active() -> LogAllowlist | None:
    return _ACTIVE.allowlist


def withheld() -> dict[str, int]:
    """Records withheld since start, per logger."""
    with _ACTIVE.lock:
        return dict(_ACTIVE.withheld)


# ---------------------------------------------------------------------- the self-test


class _Capture(logging.Handler):
    """Keeps the text of every record it is handed: what any handler of that logger would have written."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = repr(record.msg)
        self.texts.append(" ".join([text, record.exc_text or "", repr(record.exc_info or "")]))


def _live_loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    found = [logging.getLogger()]
    found += [obj for obj in list(manager.loggerDict.values()) if isinstance(obj, logging.Logger)]
    return found


def bypassing_loggers(loggers: Iterable[logging.Logger]) -> list[str]:
    """Those of ``loggers`` whose class hands records to handlers around the hook (its own ``callHandlers``)."""
    return [
        logger.name
        for logger in loggers
        if not carries(getattr(type(logger), "callHandlers", None), call_handlers)
    ]


#: The engine's request-logging code, called with the canary: ``emit(canary)``.
ContentEmitter = Callable[[str], None]


def log_canary_check(
    emitters: Mapping[str, ContentEmitter], content_loggers: Callable[[], Sequence[str]]
) -> Check:
    """The self-test of ``allowlist_logs``: no canary reaches a handler, and the canary was really logged.

    ``emitters`` call the engine's own request-logging code (named, for the
    evidence) with a canary as prompt or output; ``content_loggers`` names the
    loggers that code writes to, into which a canary record is also put
    straight (``Logger.handle``: past level checks, through filters and the
    hook), so the path is exercised whatever level the engine logs at. Every
    logger that has handlers, and the root, gets a capturing handler for the
    duration. It fails when any captured record holds the canary (without the
    allowlist, the control, that is what it reports), when the allowlist is not
    applied, when a live logger hands records to its handlers around the hook,
    and -- the positive controls -- when the capture misses an allowlisted
    marker record or the canary records were not withheld.
    """

    def check() -> Evidence:
        names = list(dict.fromkeys(content_loggers()))
        if not names:
            raise SelfTestFailed("the engine names no content logger to put the canary into")
        canary = f"pccguard-log-canary-{secrets.token_hex(8)}"
        marker = f"pccguard-log-marker-{secrets.token_hex(8)}"
        capture = _Capture()
        hosts = [lg for lg in _live_loggers() if lg.handlers or lg is logging.getLogger()]
        before = sum(withheld().values())
        for lg in hosts:
            lg.addHandler(capture)
        try:
            logging.getLogger("pccguard.selftest").handle(_record("pccguard.selftest", marker))
            for emit in emitters.values():
                emit(canary)
            for name in names:
                logging.getLogger(name).handle(_record(name, canary))
        finally:
            for lg in hosts:
                lg.removeHandler(capture)
        applied = _ACTIVE.allowlist is not None
        leaked = sum(canary in text for text in capture.texts)
        if leaked:
            unapplied = "" if applied else " (the log allowlist is not applied in this process)"
            raise SelfTestFailed(f"the canary request reached a log handler in {leaked} record(s){unapplied}")
        if not applied:
            raise SelfTestFailed("the log allowlist is not applied in this process")
        live = _live_loggers()  # after the emitters ran: loggers they created are checked too
        bypass = bypassing_loggers(live)
        if bypass:
            listed = ", ".join(sorted(bypass)[:5])
            raise SelfTestFailed(f"logger(s) {listed} hand records to handlers around the allowlist")
        if not any(marker in text for text in capture.texts):
            raise SelfTestFailed(
                "the capture saw no allowlisted record: the check could not see the handlers"
            )
        held = sum(withheld().values()) - before
        if held < len(names):
            raise SelfTestFailed(f"only {held} of {len(names)} canary records were withheld")
        return Evidence(
            checked=(
                f"a canary through {', '.join(emitters) or 'no request logger'} and {len(names)} content "
                f"logger(s) left no canary in what {len(hosts)} logger(s)' handlers received; {held} record(s) "
                f"withheld; {len(live)} live loggers deliver through the allowlist"
            )
        )

    return check


def _record(name: str, text: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 0, "%s", (text,), None)
