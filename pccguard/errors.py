"""Error types. Every error pccguard raises on purpose is a ``PccguardError``.

The CLI turns them into one line on stderr and exit status 2; the serving
plugins turn them into a refusal to start. Nothing here is ever a pass.
"""

from __future__ import annotations

#: C0 controls and DEL: a file name or a value quoted from a file must not break the one line or drive the terminal.
_CONTROLS = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


def printable(text: str) -> str:
    """``text`` with control characters written as ``\\xNN`` escapes, so it stays on one line."""
    return text.translate(_CONTROLS)


class PccguardError(Exception):
    """Base class: a problem with input, configuration or an engine, described in one line."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = printable(" ".join(message.split()))
        self.where = printable(where) if where is not None else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class UsageError(PccguardError):
    """Bad command-line usage."""


class InputError(PccguardError):
    """A malformed or invalid input file: facts, waivers, profiles, rules, config."""


class RuleError(InputError):
    """A rule file that does not parse, compile or satisfy the authoring contract."""


class EngineError(PccguardError):
    """The policy engine failed or returned an undefined decision (fail-closed)."""


class EnforcementError(PccguardError):
    """A mitigation could not be installed, or a deny remains: the engine must not start."""
