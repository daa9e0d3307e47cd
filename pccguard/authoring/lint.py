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

from pccguard.errors import PccguardError
from pccguard.facts.catalog import load_catalog
from pccguard.facts.mitigations import is_valid_mitigation
from pccguard.files.resources import shipped_rules_dir
from pccguard.policy.constructs import _IN_STRINGS, FORBIDDEN, _code_only, _line_of, _without_comments
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.metadata import ParsedRuleFile
from pccguard.policy.rulebook import LIB_PACKAGE_PREFIX, collect_rule_files


@dataclass(frozen=True, order=True)
class LintProblem:
    path: str
    line: int
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message}"


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
            from pccguard.policy.rulebook import load_rulebook

            EmbeddedEngine(load_rulebook(rule_dirs).modules())
        except PccguardError as exc:
            where = exc.where or "rulebook"
            file, _, line_text = where.partition(":")
            line = int(line_text) if line_text.isdigit() else 1
            problems.append(LintProblem(file, line, "PCC008", exc.message))
    return sorted(problems)
