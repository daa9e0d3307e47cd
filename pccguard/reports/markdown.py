"""``--format markdown``: a GitHub-flavoured report for pull-request comments and job summaries.

Layout: the outcome, the run's context, a summary table with one row per
requirement, the problems, then one section per requirement with a table of
its rules (worst verdict first).

Every piece of report text is escaped for a table cell: ``|`` would split the
cell, a newline would end the table, and raw HTML or Markdown syntax from a
rule file or a fact value (``<script>``, ``![img](https://…)``) must show as
text, not render. Newlines inside a cell become ``<br>``, the one piece of
HTML emitted on purpose.
"""

from __future__ import annotations

import re

from pccguard.evaluation.results import VERDICT_ORDER, Report, Verdict
from pccguard.reports._common import (
    VERDICT_LABELS,
    VERDICT_WORDS,
    clean,
    deployment_label,
    details,
    exit_meaning,
    location_label,
    locations,
    mitigations_label,
    outcome_label,
    requirement_summaries,
    results_for,
    totals,
)

# Characters that start inline syntax anywhere in a line: emphasis, code, links
# and images (``[`` opens both; without it ``(`` and ``!`` are plain text),
# strike-through and the cell separator. Escaping only these keeps the
# Markdown source readable.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# What would turn the start of a list item into a nested list, heading or numbered list.
_MD_BLOCK_START = re.compile(r"^(?:([-+=#])|(\d+)([.)]))")


def escape(text: str) -> str:
    """Inline-safe Markdown: HTML-escaped, syntax characters backslash-escaped, one line.

    Line breaks become ``<br>`` so a multi-line message stays inside its cell.
    """
    text = clean(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return _MD_BLOCK_START.sub(_escape_block_start, "<br>".join(line for line in lines if line))


def _escape_block_start(match: re.Match[str]) -> str:
    if match.group(1):
        return "\\" + match.group(1)
    return f"{match.group(2)}\\{match.group(3)}"


def verdict_cell(verdict: Verdict) -> str:
    return f"**{VERDICT_LABELS[verdict]}**"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _context(report: Report) -> list[str]:
    tool = report.tool
    return [
        _row(["", ""]),
        _row(["---", "---"]),
        _row(["Deployment", escape(deployment_label(report))]),
        _row(["Mitigations active", escape(mitigations_label(report))]),
        _row(["Profile", escape(f"{report.profile} (fails on severity {report.fail_on} and above)")]),
        _row(["Policy engine", escape(report.engine)]),
        _row(["Tool", escape(f"{tool.get('name', 'pccguard')} {tool.get('version', '')}".strip())]),
    ]


def _summary(report: Report) -> list[str]:
    header = ["Requirement", "Verdict", *(VERDICT_WORDS[v] for v in VERDICT_ORDER)]
    lines = [_row(header), _row(["---", "---", *("---:" for _ in VERDICT_ORDER)])]
    for summary in requirement_summaries(report):
        counts = [str(summary.counts.get(v.value, 0)) for v in VERDICT_ORDER]
        name = escape(f"{summary.letter} — {summary.title}")
        lines.append(_row([name, verdict_cell(summary.verdict), *counts]))
    grand = totals(report.results)
    lines.append(_row(["**Total**", "", *(f"**{grand[v.value]}**" for v in VERDICT_ORDER)]))
    return lines


def _section(report: Report, letter: str, title: str, verdict: Verdict) -> list[str]:
    lines = [f"## {escape(letter)} — {escape(title)}: {VERDICT_LABELS[verdict]}", ""]
    results = results_for(report, letter)
    if not results:
        return [*lines, "_No rules evaluated for this requirement._", ""]
    lines.append(_row(["Verdict", "Rule", "Severity", "Title", "Details", "Location"]))
    lines.append(_row(["---"] * 6))
    for result in results:
        where = "<br>".join(escape(location_label(loc)) for loc in locations(result))
        lines.append(
            _row(
                [
                    verdict_cell(result.verdict),
                    escape(result.id),
                    escape(result.severity),
                    escape(result.rule.title),
                    "<br>".join(escape(line) for line in details(result)),
                    where,
                ]
            )
        )
    return [*lines, ""]


def render_markdown(report: Report) -> str:
    """The whole report as GitHub-flavoured Markdown, ending with a newline."""
    outcome = outcome_label(report)
    lines = [
        f"# PCC compliance: {escape(deployment_label(report))}",
        "",
        f"**{outcome}**: {escape(exit_meaning(report))}",
        "",
        *_context(report),
        "",
        "## Summary",
        "",
        *_summary(report),
        "",
    ]
    if report.problems:
        lines += ["## Problems", ""]
        lines += [f"- {escape(problem)}" for problem in report.problems]
        lines.append("")
    for summary in requirement_summaries(report):
        lines += _section(report, summary.letter, summary.title, summary.verdict)
    return "\n".join(lines).rstrip("\n") + "\n"
