"""The embedded engine: regopy (rego-cpp) in process, compiled once into a bundle.

regopy quirks handled here (see docs/rule-authoring.md for the portable subset):

* errors are printed straight to file descriptor 1, where they would corrupt a
  JSON or SARIF report on stdout: compilation and evaluation run with fd 1
  redirected to a capture file, and the captured text feeds the error message;
* unsupported builtins return undefined silently: ``strict_built_in_errors``
  makes them errors;
* a query of a false document is undefined: the decision is always bound
  (``x := data.pcc.decision``) and read from the binding;
* an evaluation error comes back as an "ok" output whose text is an error node,
  which regopy's ``Output`` fails to parse as JSON: queries are read raw
  (``_raw_query``), and a failed decision is re-evaluated rule by rule so one
  bad rule is ``error`` alone, named by its file;
* regopy cannot be interrupted: evaluation runs under ``EvalLimits`` in a
  forked worker (``pccguard/policy/engines/limits.py``);
* regopy bundles its own OpenSSL: a process that loads regopy *before* torch
  aborts ("double free or corruption") when torch loads. Engine plugins and the
  enclave import torch first; the CLI imports this module lazily, after any
  engine adapter.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from regopy import Interpreter

from pccguard.errors import EngineError, RuleError
from pccguard.policy.engines.base import (
    DECISION_ENTRYPOINT,
    DECISION_QUERY,
    DecisionDocument,
    validate_decision_document,
)
from pccguard.policy.engines.limits import EvalLimits, check_input_size, run_limited

_FD_LOCK = threading.Lock()


@contextlib.contextmanager
def _captured_stdout() -> Iterator[list[str]]:
    """Redirect fd 1 to a temporary file for the duration; yields a list filled with the text."""
    captured: list[str] = []
    with _FD_LOCK, tempfile.TemporaryFile(mode="w+b") as sink:
        import sys

        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(sink.fileno(), 1)
            yield captured
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


_RULE_PACKAGE_RE = re.compile(r"^package\s+(pcc\.rules\.[A-Za-z_][\w]*)\s*$", re.M)
_LOCATION_RE = re.compile(r"--\s*(\S+?):(\d+):(\d+)")


def describe_rego_error(printed: str, exc: BaseException | None) -> tuple[str, str | None]:
    """One-line message and ``file:line`` from what regopy printed or raised."""
    text = printed.strip()
    message = None
    location = None
    if text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines and lines[0].startswith("Errors:") and len(lines) > 1:
            message = lines[1]
        found = _LOCATION_RE.search(text)
        if found:
            location = f"{found.group(1)}:{found.group(2)}"
    if message is None and exc is not None:
        found_msg = re.search(r"errormsg \d+:([^)\n]+)", str(exc))
        message = found_msg.group(1).strip() if found_msg else str(exc).splitlines()[0]
    return message or "policy engine error", location


def _raw_query(runner: Any, bundle: Any, entrypoint: str | None = None) -> tuple[bool, str]:
    """Query a bundle and return ``(ok, text)`` without building a regopy ``Output``.

    ``Output`` parses the text as JSON whenever the library says "ok", but an
    evaluation error (an unknown builtin, say) comes back "ok" with an error
    node as its text, and ``Output`` then raises a bare ``JSONDecodeError``
    ("Expecting value: line 1 column 1") that names neither rule nor file.
    """
    from regopy.rego_shared import (
        rego_bundle_query,
        rego_bundle_query_entrypoint,
        rego_free_output,
        rego_output_ok,
        rego_output_string,
    )

    if entrypoint is None:
        impl = rego_bundle_query(runner._impl, bundle._impl)
    else:
        impl = rego_bundle_query_entrypoint(runner._impl, bundle._impl, entrypoint)
    try:
        text = rego_output_string(impl)
        ok = bool(rego_output_ok(impl)) and not text.lstrip().startswith("(error")
    finally:
        rego_free_output(impl)
    return ok, text


def error_messages(text: str) -> list[str]:
    """The distinct ``errormsg`` texts of a failed query's output."""
    messages: list[str] = []
    for found in re.finditer(r"errormsg \d+:([^)\n]+)", text):
        message = found.group(1).strip()
        if message not in messages:
            messages.append(message)
    return messages


class EmbeddedEngine:
    """Compile the rulebook once; evaluate each input against the compiled bundle, within ``limits``."""

    name = "embedded"

    def __init__(self, modules: list[tuple[str, str]], limits: EvalLimits | None = None) -> None:
        self._lock = threading.Lock()
        self.limits = EvalLimits() if limits is None else limits
        printed: list[str] = []
        try:
            with _captured_stdout() as printed:
                builder = Interpreter()
                builder.strict_built_in_errors = True
                for name, source in modules:
                    builder.add_module(name, source)
                self._bundle = builder.build(DECISION_QUERY, [DECISION_ENTRYPOINT])
        except Exception as exc:  # regopy.RegoError and friends
            message, location = describe_rego_error("".join(printed), exc)
            raise RuleError(f"Rego compile error: {message}", where=location) from None
        self._runner = Interpreter()
        self._runner.strict_built_in_errors = True
        self._modules = list(modules)
        self._isolation_bundle: Any = None
        #: Rule package → the file that defines it, so an isolated error names its file.
        self._files = {
            m.group(1).rsplit(".", 1)[-1]: name
            for name, src in modules
            if (m := _RULE_PACKAGE_RE.search(src))
        }
        self._packages = sorted(self._files)

    def evaluate(self, input_doc: dict[str, Any]) -> DecisionDocument:
        check_input_size(input_doc, self.limits)
        with self._lock:
            if not self.limits.isolated:
                return self._evaluate_here(input_doc)
            doc = run_limited(
                lambda: self._evaluate_here(input_doc, in_worker=True),
                self.limits,
                before_fork=_flush_stdio,
            )
        return validate_decision_document(doc)

    def _evaluate_here(self, input_doc: dict[str, Any], *, in_worker: bool = False) -> DecisionDocument:
        """The combined query; on failure, rule by rule so only the failing rules become errors."""
        if in_worker:
            _reset_fd_lock()
        printed: list[str] = []
        try:
            with _captured_stdout() as printed:
                self._runner.set_input(input_doc)
                ok, text = _raw_query(self._runner, self._bundle)
        except Exception as exc:
            message, location = describe_rego_error("".join(printed), exc)
            where = f" at {location}" if location else ""
            raise EngineError(f"policy evaluation failed{where}: {message}") from None
        if ok:
            try:
                doc = json.loads(text)["bindings"]["x"]
            except (ValueError, KeyError, TypeError):
                raise EngineError("policy engine returned a decision that is not valid JSON") from None
            return validate_decision_document(doc)
        message, location = describe_rego_error("".join(printed), None)
        details = error_messages(text)
        if details:
            message = "; ".join(details[:3])
        isolated = self._isolate(input_doc)
        if isolated is not None:
            return isolated
        where = f" at {location}" if location else ""
        raise EngineError(f"policy evaluation failed{where}: {message}")

    def _isolate(self, input_doc: dict[str, Any]) -> DecisionDocument | None:
        """After a failed decision, evaluate rule by rule so only the failing rules become errors.

        It runs only when something is already wrong, so the normal path pays
        nothing for it; it turns "the whole report is error" into "this rule,
        in this file, is error; the others have real verdicts". The per-rule
        bundle is compiled on first use. Returns ``None`` when nothing can be
        isolated (for instance when the library itself fails).
        """
        doc: dict[str, Any] = {"schema": 1, "applicable": {}, "deny": {}, "warn": {}, "errors": {}}
        try:
            with _captured_stdout():
                bundle = self._per_rule_bundle()
                rego = Interpreter()
                rego.strict_built_in_errors = True
                rego.set_input(input_doc)
                for pkg in self._packages:
                    for key in ("applicable", "deny", "warn"):
                        try:
                            ok, text = _raw_query(rego, bundle, f"pcc/rules/{pkg}/{key}")
                        except Exception as exc:  # one rule's failure must not hide the others' verdicts
                            ok, text = False, f"errormsg 0:{type(exc).__name__})"
                        if not ok:
                            reason = "; ".join(error_messages(text)[:3]) or "evaluation failed"
                            doc["errors"][pkg] = f"{self._files.get(pkg, pkg)}: {reason}"
                            break
                        values = json.loads(text).get("expressions", []) if text != "undefined" else []
                        if values:
                            doc[key][pkg] = values[0]
        except Exception:
            return None
        if not doc["errors"]:
            return None
        return validate_decision_document(doc)

    def _per_rule_bundle(self) -> Any:
        if self._isolation_bundle is None:
            builder = Interpreter()
            builder.strict_built_in_errors = True
            for name, source in self._modules:
                builder.add_module(name, source)
            entrypoints = [
                f"pcc/rules/{p}/{k}" for p in self._packages for k in ("applicable", "deny", "warn")
            ]
            self._isolation_bundle = builder.build(DECISION_QUERY, entrypoints)
        return self._isolation_bundle


def _flush_stdio() -> None:
    """Flush Python's buffers before a fork, so the worker cannot write them a second time."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()


def _reset_fd_lock() -> None:
    """In a forked worker: a fresh fd-1 lock (another parent thread may have held the old one at fork)."""
    global _FD_LOCK
    _FD_LOCK = threading.Lock()
