"""The embedded engine: regopy (rego-cpp) in process, compiled once into a bundle.

regopy quirks handled here (see docs/rule-authoring.md for the portable subset):

* errors are printed straight to file descriptor 1, where they would corrupt a
  JSON or SARIF report on stdout: compilation and evaluation run with fd 1
  redirected to a capture file, and the captured text feeds the error message;
* unsupported builtins return undefined silently: ``strict_built_in_errors``
  makes them errors;
* a query of a false document is undefined: the decision is always bound
  (``x := data.pcc.decision``) and read from the binding;
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

from pccguard.engines.base import (
    DECISION_ENTRYPOINT,
    DECISION_QUERY,
    DecisionDocument,
    validate_decision_document,
)
from pccguard.errors import EngineError, RuleError

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


def output_error_messages(output: Any) -> list[str]:
    """The ``errormsg`` texts of a failed regopy ``Output`` (only reachable through its child nodes)."""
    from regopy.rego_shared import rego_node_json

    messages: list[str] = []
    try:
        root = output.node()
        for index in range(len(root)):
            text = rego_node_json(root.at(index)._impl)
            for found in re.finditer(r"errormsg \d+:([^)\n]+)", text):
                message = found.group(1).strip()
                if message not in messages:
                    messages.append(message)
    except Exception:  # the error text is best effort; the failure itself is already certain
        return messages
    return messages


class EmbeddedEngine:
    """Compile the rulebook once; evaluate each input against the compiled bundle."""

    name = "embedded"

    def __init__(self, modules: list[tuple[str, str]]) -> None:
        self._lock = threading.Lock()
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
        self._packages = sorted(
            {m.group(1).rsplit(".", 1)[-1] for _, src in modules if (m := _RULE_PACKAGE_RE.search(src))}
        )

    def evaluate(self, input_doc: dict[str, Any]) -> DecisionDocument:
        printed: list[str] = []
        with self._lock:
            try:
                with _captured_stdout() as printed:
                    self._runner.set_input(input_doc)
                    output = self._runner.query_bundle(self._bundle)
                    ok = output.ok()
                    raw = output.binding("x").json() if ok else None
                    details = [] if ok else output_error_messages(output)
            except EngineError:
                raise
            except Exception as exc:
                message, location = describe_rego_error("".join(printed), exc)
                where = f" at {location}" if location else ""
                raise EngineError(f"policy evaluation failed{where}: {message}") from None
        if not ok or raw is None:
            message, location = describe_rego_error("".join(printed), None)
            if details:
                message = "; ".join(details[:3])
            where = f" at {location}" if location else ""
            isolated = self._isolate(input_doc)
            if isolated is not None:
                return isolated
            raise EngineError(f"policy evaluation failed{where}: {message}")
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, TypeError):
            raise EngineError("policy engine returned a decision that is not valid JSON") from None
        return validate_decision_document(doc)

    def _isolate(self, input_doc: dict[str, Any]) -> DecisionDocument | None:
        """After a failed decision, evaluate rule by rule so only the failing rules become errors.

        It runs only when something is already wrong; it turns "the whole report
        is error" into "these rules are error, the others have real verdicts".
        The per-rule bundle is compiled on first use. Returns ``None`` when
        nothing can be isolated (for instance when the library itself fails).
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
                        output = rego.query_bundle_entrypoint(bundle, f"pcc/rules/{pkg}/{key}")
                        if not output.ok():
                            reason = "; ".join(output_error_messages(output)[:3]) or "evaluation failed"
                            doc["errors"][pkg] = reason
                            break
                        values = json.loads(str(output)).get("expressions", [])
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
