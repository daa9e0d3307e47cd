"""``pccguard rules lint``: the authoring contract, checked before a rule can mislead anyone.

Checks: METADATA presence and validity, id uniqueness, package/id agreement,
catalog references, mitigation ids, the ``applicable`` contract, v1 syntax, the
portable Rego subset (constructs regopy mishandles: see docs/rule-authoring.md),
and that the whole rulebook compiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pccguard.catalog import load_catalog
from pccguard.engines.embedded import EmbeddedEngine
from pccguard.errors import PccguardError, RuleError
from pccguard.metadata import ParsedRuleFile
from pccguard.mitigations import is_valid_mitigation
from pccguard.resources import shipped_rules_dir
from pccguard.rulebook import LIB_PACKAGE_PREFIX, collect_rule_files


@dataclass(frozen=True, order=True)
class LintProblem:
    path: str
    line: int
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message}"


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


def lint_file(item: ParsedRuleFile, is_library: bool) -> list[LintProblem]:
    path = str(item.path)
    problems = [_from_error(path, e) for e in item.errors]
    code = _code_only(item.source)
    with_strings = _without_comments(item.source)
    if not re.search(r"^\s*import\s+rego\.v1\s*$", code, re.M):
        problems.append(LintProblem(path, 1, "PCC100", "missing `import rego.v1`"))
    for code_id, pattern, why in FORBIDDEN:
        if is_library and code_id == "PCC112":
            continue
        view = with_strings if code_id in _IN_STRINGS else code
        for match in pattern.finditer(view):
            problems.append(LintProblem(path, _line_of(view, match.start()), code_id, why))
    if is_library:
        return problems
    if item.meta is None and not item.errors:
        problems.append(LintProblem(path, 1, "PCC001", "no # METADATA block above the package statement"))
    if not re.search(r"^\s*(default\s+)?applicable\b", code, re.M):
        problems.append(
            LintProblem(
                path, 1, "PCC002", "rule must define `applicable` (use `default applicable := false`)"
            )
        )
    if not re.search(r"^\s*(deny|warn)\s+contains\b", code, re.M):
        problems.append(
            LintProblem(path, 1, "PCC003", "rule defines neither `deny contains` nor `warn contains`")
        )
    if item.meta is not None:
        catalog = load_catalog()
        meta = item.meta
        if meta.optimization not in catalog.all_ids():
            problems.append(
                LintProblem(path, meta.line, "PCC004", f"unknown catalog id {meta.optimization!r}")
            )
        else:
            row = catalog.row(meta.optimization)
            if meta.requirement not in row.endangers:
                problems.append(
                    LintProblem(
                        path,
                        meta.line,
                        "PCC005",
                        f"{meta.optimization} does not endanger {meta.requirement} in the catalog",
                        "warning",
                    )
                )
        if not is_valid_mitigation(meta.mitigation):
            problems.append(
                LintProblem(path, meta.line, "PCC006", f"unknown mitigation id {meta.mitigation!r}")
            )
    return problems


def _from_error(path: str, error: str) -> LintProblem:
    match = re.match(r"^(.*?):(\d+): (.*)$", error)
    if match:
        return LintProblem(match.group(1), int(match.group(2)), "PCC000", match.group(3))
    return LintProblem(path, 1, "PCC000", error)


def lint_rules(rule_dirs: list[Path]) -> list[LintProblem]:
    library, parsed = collect_rule_files(rule_dirs)
    problems: list[LintProblem] = []
    for item in library:
        problems += lint_file(item, is_library=True)
    seen: dict[str, list[ParsedRuleFile]] = {}
    for item in parsed:
        problems += lint_file(item, is_library=item.package.startswith(LIB_PACKAGE_PREFIX))
        if item.meta is not None:
            seen.setdefault(item.meta.id, []).append(item)
    shipped = shipped_rules_dir()
    for rule_id, items in seen.items():
        for group in (
            [i for i in items if shipped in i.path.resolve().parents],
            [i for i in items if shipped not in i.path.resolve().parents],
        ):
            for item in group[1:]:
                line = item.meta.line if item.meta else 1
                problems.append(
                    LintProblem(
                        str(item.path), line, "PCC007", f"duplicate rule id {rule_id} (also {group[0].path})"
                    )
                )
    if not any(p.severity == "error" for p in problems):
        try:
            from pccguard.rulebook import load_rulebook

            EmbeddedEngine(load_rulebook(rule_dirs).modules())
        except PccguardError as exc:
            where = exc.where or "rulebook"
            file, _, line_text = where.partition(":")
            line = int(line_text) if line_text.isdigit() else 1
            problems.append(LintProblem(file, line, "PCC008", exc.message))
    return sorted(problems)
