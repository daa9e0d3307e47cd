"""What every report format shares: labels, wording, grouping and text hygiene.

Formatters render a ``Report``; they never decide a verdict. Everything here is
presentation only: how a verdict is named, how a provenance is written as a
location, which sentence explains the exit status. Keeping it in one place
means the terminal table, Markdown and HTML say the same thing in the same
words, and a change of wording cannot make two formats disagree.

Report text is not trusted. Rule titles and messages come from rule files that
a security team may load from anywhere (``--rules DIR``), and messages embed
fact values from a facts file. Each format escapes for its own syntax; the
helpers here remove what no format can show safely (terminal control
sequences, characters XML forbids).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

from pccguard.evaluation.results import (
    FAILING_VERDICTS,
    VERDICT_ORDER,
    Report,
    RequirementSummary,
    RuleResult,
    Verdict,
)
from pccguard.facts.catalog import LETTERS
from pccguard.facts.model import Provenance
from pccguard.policy.metadata import SEVERITY_RANK

#: Short, upper-case labels: a verdict is always shown as text, colour only adds to it.
VERDICT_LABELS: dict[Verdict, str] = {
    Verdict.PASS: "PASS",
    Verdict.FAIL: "FAIL",
    Verdict.DECLARED: "DECLARED",
    Verdict.WARN: "WARN",
    Verdict.ENFORCED: "ENFORCED",
    Verdict.WAIVED: "WAIVED",
    Verdict.NOT_APPLICABLE: "N/A",
    Verdict.ERROR: "ERROR",
}

#: Words for counts and totals ("2 not applicable" reads better than "2 not_applicable").
VERDICT_WORDS: dict[Verdict, str] = {
    Verdict.PASS: "pass",
    Verdict.FAIL: "fail",
    Verdict.DECLARED: "declared",
    Verdict.WARN: "warn",
    Verdict.ENFORCED: "enforced",
    Verdict.WAIVED: "waived",
    Verdict.NOT_APPLICABLE: "not applicable",
    Verdict.ERROR: "error",
}

# C0 controls except tab and newline, DEL, and C1 controls: ESC alone lets a
# facts value recolour or rewrite a terminal, and none of them has a place in
# a report.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group(0)):02x}"


def clean(text: str) -> str:
    """``text`` with control characters written out as ``\\xNN`` (tab and newline kept).

    Written out rather than dropped, so a reader can still see that a value
    contained something odd; carriage returns become ``\\x0d`` because a bare CR
    rewrites the start of a terminal line.
    """
    return _CONTROL_RE.sub(_visible, text)


def one_line(text: str) -> str:
    """``clean(text)`` with line breaks and tabs folded into single spaces (for table cells)."""
    return " ".join(clean(text).split())


def results_by_id(report: Report) -> list[RuleResult]:
    """Results in rule-id order: the stable order of every machine-readable format."""
    return sorted(report.results, key=lambda r: r.id)


def results_for(report: Report, letter: str) -> list[RuleResult]:
    """A requirement's results, worst verdict first, then highest severity, then rule id.

    Human-facing formats list what needs attention first; the order is still a
    total order, so the output is deterministic.
    """
    mine = [r for r in report.results if r.rule.requirement == letter]
    return sorted(
        mine,
        key=lambda r: (VERDICT_ORDER.index(r.verdict), -SEVERITY_RANK.get(r.severity, 0), r.id),
    )


def requirement_summaries(report: Report) -> list[RequirementSummary]:
    """The per-requirement summaries in S, E, T, P, V order, whatever order the report lists them in."""
    order: dict[str, int] = {letter: index for index, letter in enumerate(LETTERS)}
    return sorted(report.requirements, key=lambda s: order.get(s.letter, len(order)))


def totals(results: Iterable[RuleResult]) -> dict[str, int]:
    """Count of results per verdict value, every verdict present (zero included), worst first.

    Keyed like ``RequirementSummary.counts`` so run totals and requirement
    counts go through the same code.
    """
    counted = Counter(r.verdict.value for r in results)
    return {v.value: counted.get(v.value, 0) for v in VERDICT_ORDER}


def counts_phrase(counts: Mapping[str, int]) -> str:
    """``"1 fail · 2 pass"``: the non-zero counts, worst first; ``"no rules"`` when all are zero."""
    parts = []
    for verdict in VERDICT_ORDER:
        value = counts.get(verdict.value, 0)
        if value:
            parts.append(f"{value} {VERDICT_WORDS[verdict]}")
    return " · ".join(parts) if parts else "no rules"


def location_label(location: Provenance) -> str:
    """A provenance as a person would write it: ``facts.yaml:12``, ``flag --x``, ``env VLLM_X``."""
    if location.uri:
        return f"{location.uri}:{location.line}" if location.line else location.uri
    if location.name:
        return f"{location.kind} {location.name}"
    return location.kind


def first_location(result: RuleResult) -> Provenance | None:
    """Where the first finding that has a provenance came from."""
    for finding in result.findings:
        if finding.location is not None:
            return finding.location
    return None


def locations(result: RuleResult) -> list[Provenance]:
    """Distinct finding provenances in finding order."""
    seen: list[Provenance] = []
    for finding in result.findings:
        if finding.location is not None and finding.location not in seen:
            seen.append(finding.location)
    return seen


def waiver_note(result: RuleResult) -> str | None:
    """``"waived by OWNER until DATE: JUSTIFICATION"`` for a waived result."""
    waiver = result.waiver
    if waiver is None:
        return None
    return f"waived by {waiver.owner} until {waiver.expires}: {waiver.justification}"


def note(result: RuleResult) -> str | None:
    """Why the verdict is not the plain one (waiver, active mitigation, advisory, engine error)."""
    if result.verdict == Verdict.WAIVED:
        return waiver_note(result) or result.reason
    if result.verdict == Verdict.ERROR:
        return result.reason or "the policy engine gave no decision for this rule"
    if result.verdict == Verdict.ENFORCED:
        return result.reason or f"mitigation {result.rule.mitigation} is active"
    if result.verdict == Verdict.DECLARED:
        return result.reason or f"mitigation {result.rule.mitigation} is declared, not enforced"
    return result.reason


def override_note(result: RuleResult) -> str | None:
    """``"custom rule FILE overrides the shipped PCC-S-004 (rules/...)"`` when a custom rule replaced one.

    A replacement can change what a shipped rule checks and its severity, so
    every format says so next to the verdict instead of showing a plain result.
    """
    shipped = result.rule.overrides
    if not shipped:
        return None
    return f"custom rule {result.rule.path} overrides the shipped {result.id} ({shipped})"


def overridden(report: Report) -> list[RuleResult]:
    """Results of custom rules that replaced a shipped rule, in rule-id order."""
    return [r for r in results_by_id(report) if r.rule.overrides]


def details(result: RuleResult) -> list[str]:
    """Everything a reader needs about one result, as lines: the note and any override, then each finding."""
    lines = []
    explanation = note(result)
    if explanation:
        lines.append(explanation)
    replaced = override_note(result)
    if replaced:
        lines.append(replaced)
    lines.extend(f.message for f in result.findings)
    return lines


def headline(result: RuleResult) -> str:
    """One line for a narrow cell: the note or the first finding, and how many more findings there are."""
    explanation = note(result)
    messages = [f.message for f in result.findings]
    if explanation:
        first = explanation
        more = len(messages)
        if result.verdict in (Verdict.FAIL, Verdict.DECLARED, Verdict.ENFORCED, Verdict.WARN) and messages:
            first = f"{messages[0]} ({explanation})"
            more -= 1
    elif messages:
        first, more = messages[0], len(messages) - 1
    else:
        return ""
    return f"{first} (+{more} more)" if more else first


def deployment_label(report: Report) -> str:
    """``"prod-eu (vllm 0.9.1)"``: the deployment name with its serving engine."""
    deployment = report.deployment
    name = str(deployment.get("name") or "unnamed")
    engine = deployment.get("engine")
    version = deployment.get("engine_version")
    serving = " ".join(str(x) for x in (engine, version) if x)
    return f"{name} ({serving})" if serving else name


def mitigations_label(report: Report) -> str:
    """Mitigations installed by the running plugin, or declared by a document, or why there are none."""
    active = report.deployment.get("mitigations_active") or []
    plugin = report.deployment.get("plugin_active")
    if active:
        listed = ", ".join(str(m) for m in active)
        return (
            f"{listed} (enforced by the running plugin)" if plugin else f"{listed} (declared, not enforced)"
        )
    return "none (plugin active)" if plugin else "none (static check, plugin not active)"


def exit_meaning(report: Report) -> str:
    """The exit status and what it means, in one sentence, from the report's own decision."""
    code = report.exit_code()
    if code == 2:
        errors = sum(1 for r in report.results if r.verdict == Verdict.ERROR)
        return (
            f"exit 2: the policy engine gave no decision for {errors} rule(s); "
            "nothing about them was verified (fail-closed)"
        )
    if code == 1:
        reasons = []
        failing = len(report.failing())
        if failing:
            reasons.append(f"{failing} rule(s) fail at severity {report.fail_on} or above")
        if report.problems:
            reasons.append(f"{len(report.problems)} problem(s) need attention")
        return "exit 1: " + "; ".join(reasons)
    return f"exit 0: no rule fails at severity {report.fail_on} or above, and there are no problems"


def outcome_label(report: Report) -> str:
    """``PASS``, ``FAIL`` or ``ERROR`` for the run as a whole, matching the exit status."""
    return {0: "PASS", 1: "FAIL"}.get(report.exit_code(), "ERROR")


def below_fail_on(report: Report, result: RuleResult) -> bool:
    """A ``fail`` (or ``declared``) under the ``--fail-on`` threshold: a finding that does not fail the run.

    Decided by ``Report.failing()``, the same list the exit status comes from,
    so no format can call a rule a gate failure that the exit status ignores.
    """
    if result.verdict not in FAILING_VERDICTS:
        return False
    return all(failing.id != result.id for failing in report.failing())


def below_fail_on_note(report: Report, result: RuleResult) -> str | None:
    """``"severity low is below --fail-on high: does not fail the run"`` for such a result, else ``None``."""
    if not below_fail_on(report, result):
        return None
    return f"severity {result.severity} is below --fail-on {report.fail_on}: does not fail the run"
