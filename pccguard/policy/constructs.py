"""The portable Rego subset: constructs the embedded engine miscompiles or dies on.

The rulebook loader refuses the constructs that abort regopy outright
(``refuse_crashing_constructs``), because nothing fail-closed can catch a
process that terminates; ``pccguard rules lint`` reports all of them. Both read
the one table here, so the loader and the linter never disagree.
"""

from __future__ import annotations

import re

from pccguard.errors import RuleError
from pccguard.policy.metadata import ParsedRuleFile

#: (code, pattern, why) for constructs outside the portable subset.
FORBIDDEN: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("PCC101", re.compile(r"\bwith\s+input\b"), "`with input` crashes regopy; use fixtures instead"),
    (
        "PCC102",
        re.compile(r"\bsemver\."),
        "semver builtins miscompare on regopy; compare version_tuple facts",
    ),
    (
        "PCC103",
        re.compile(r"\bsprintf\s*\("),
        "sprintf quotes strings on regopy; use the METADATA message template",
    ),
    ("PCC104", re.compile(r"%q"), "%q is not supported by regopy"),
    ("PCC105", re.compile(r"\btime\.parse"), "time parsing fails on regopy; evaluate dates in Python"),
    ("PCC106", re.compile(r"\bhttp\.send\b"), "http.send is unsupported and rules read only facts"),
    ("PCC107", re.compile(r"\bnet\.[a-z_]+\s*\("), "net.* builtins are unsupported on regopy"),
    ("PCC108", re.compile(r"\bjson\.match_schema\b"), "json.match_schema is unsupported on regopy"),
    ("PCC109", re.compile(r"\bprint\s*\("), "print writes to stdout and corrupts machine-readable reports"),
    (
        "PCC110",
        re.compile(r"\brego\.metadata\."),
        "rego.metadata is undefined on regopy; pccguard parses METADATA",
    ),
    (
        "PCC111",
        re.compile(r"^[A-Za-z_]\w*(\[[^\]]*\])?(\s*=\s*[^{:=\n]+)?\s*\{\s*$", re.M),
        "v0 rule syntax (a rule body needs `if`)",
    ),
    (
        "PCC113",
        re.compile(r"\(\?[a-zA-Z]+\)"),
        "inline regex flags like (?i) fail on regopy; lower-case the value instead",
    ),
    ("PCC112", re.compile(r"\binput\.profile\b(?!\.params)"), "rules may read only input.profile.params"),
)

_COMMENT = re.compile(r"#.*$", re.M)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`')


#: Checks that look inside string literals (format verbs); the others ignore strings.
_IN_STRINGS = {"PCC104", "PCC113"}


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def _code_only(source: str) -> str:
    """Source with comments and string literals blanked (line numbers preserved)."""
    return _COMMENT.sub(_blank, _STRING.sub(_blank, source))


def _without_comments(source: str) -> str:
    """Source with comments blanked, strings kept (a ``#`` inside a string is not a comment)."""
    out = []
    for line in source.splitlines(keepends=True):
        stripped = _STRING.sub(_blank, line)
        cut = stripped.find("#")
        out.append(line if cut < 0 else line[:cut] + _blank_text(line[cut:]))
    return "".join(out)


def _blank_text(text: str) -> str:
    return re.sub(r"[^\n]", " ", text)


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


#: Lint codes for constructs that abort the whole process inside regopy (a C++ ``terminate``, exit 134):
#: no report, no error verdicts, nothing fail-closed can catch. They are refused before evaluation.
CRASHING_CODES = frozenset({"PCC101"})


def refuse_crashing_constructs(items: list[ParsedRuleFile]) -> None:
    """Raise a ``RuleError`` naming file and line for the first construct that would crash the engine.

    ``load_rulebook`` calls this for custom rule files, so ``check``, ``rules
    test``, ``rules bundle`` and the serving plugins all refuse such a rule with
    one line (exit 2) instead of dying inside the engine. The other lint checks
    stay advisory there: their constructs fail as ``error`` verdicts, which the
    engine isolates to the one rule.
    """
    for item in items:
        code = _code_only(item.source)
        for code_id, pattern, why in FORBIDDEN:
            if code_id not in CRASHING_CODES:
                continue
            match = pattern.search(code)
            if match:
                line = _line_of(code, match.start())
                raise RuleError(f"{code_id} {why} (see 'pccguard rules lint')", where=f"{item.path}:{line}")
