"""The terminal report: one table per PCC requirement, then a footer with the outcome.

Each requirement gets a header line (letter, title, its summary verdict and
counts) and a table of its rules, worst verdict first; below
``NARROW_WIDTH`` columns the table becomes an indented list, because four
columns would leave the finding text a strip a few characters wide.

Rendered with rich into a string, so the CLI decides where it goes and whether
it is coloured. Colour is only ever an addition: every verdict is also a word
(``FAIL``, ``N/A``), so the report reads the same in a log file, in a terminal
without colour and to a reader who cannot tell red from green.

All report text enters rich as ``Text`` objects, never as markup strings: a
rule title or a fact value containing ``[bold]`` is shown as written instead
of being interpreted, and control characters are written out (see
``_common.clean``) so a facts value cannot send escape sequences to the
reader's terminal.

The table is for deciding what to do next, so each failing or warning rule
shows its remediation (``fix:``), a ``fail`` under ``--fail-on`` says that it
does not fail the run, and ``not_applicable`` rows are hidden unless
``show_all`` is given: on a typical deployment they are more than half the
rules and bury the findings. The requirement headers still count them, and a
footer line says how many were hidden, so nothing disappears silently.
"""

from __future__ import annotations

from io import StringIO

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from pccguard.evaluation.results import VERDICT_ORDER, Report, RuleResult, Verdict
from pccguard.reports._common import (
    VERDICT_LABELS,
    VERDICT_WORDS,
    below_fail_on_note,
    clean,
    counts_phrase,
    deployment_label,
    exit_meaning,
    first_location,
    headline,
    location_label,
    mitigations_label,
    one_line,
    outcome_label,
    overridden,
    override_note,
    requirement_summaries,
    results_for,
    totals,
)

#: Width used when the caller does not know the terminal's (a file, a pipe, a test).
DEFAULT_WIDTH = 100
#: Below this width the four-column table leaves the finding text a sliver; list the rules instead.
NARROW_WIDTH = 72

VERDICT_STYLES: dict[Verdict, str] = {
    Verdict.PASS: "green",
    Verdict.FAIL: "bold red",
    Verdict.DECLARED: "bold dark_orange",  # fails like FAIL; its own colour says "claimed, not enforced"
    Verdict.WARN: "yellow",
    Verdict.ENFORCED: "cyan",
    Verdict.WAIVED: "magenta",
    Verdict.NOT_APPLICABLE: "dim",
    Verdict.ERROR: "bold white on red",
}

SEVERITY_STYLES: dict[str, str] = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}

_OUTCOME_STYLES = {"PASS": "bold green", "FAIL": "bold red", "ERROR": "bold white on red"}


def verdict_text(verdict: Verdict) -> Text:
    """The verdict label, styled; the label alone carries the meaning."""
    return Text(VERDICT_LABELS[verdict], style=VERDICT_STYLES[verdict])


def _counts_text(counts: dict[str, int]) -> Text:
    """``1 fail · 2 pass`` with each count in its verdict's colour."""
    text = Text()
    for verdict in VERDICT_ORDER:
        value = counts.get(verdict.value, 0)
        if not value:
            continue
        if text:
            text.append(" · ", style="dim")
        text.append(f"{value} {VERDICT_WORDS[verdict]}", style=VERDICT_STYLES[verdict])
    return text if text else Text(counts_phrase(counts), style="dim")


def _finding_cell(report: Report, result: RuleResult) -> Text:
    """Rule title; the line that explains the verdict; where it came from; what to do about it.

    The location sits under the text rather than in a column of its own: a
    facts path or a flag name is often as long as the message, and a column
    for it would squeeze the message into a narrow strip on an 80-100 column
    terminal.
    """
    cell = Text(one_line(result.rule.title), style="bold")
    line = headline(result)
    if line:
        cell.append("\n")
        cell.append(one_line(line), style="red" if result.verdict == Verdict.ERROR else "")
    replaced = override_note(result)
    if replaced:
        cell.append("\n")
        cell.append(one_line(replaced), style="yellow")
    location = first_location(result)
    if location is not None:
        cell.append("\n")
        cell.append("at ", style="dim")
        cell.append(one_line(location_label(location)), style="blue")
    below_threshold = below_fail_on_note(report, result)
    if below_threshold is not None:
        cell.append("\n")
        cell.append(one_line(below_threshold), style="dim")
    if result.verdict in (Verdict.FAIL, Verdict.DECLARED, Verdict.WARN) and result.rule.remediation:
        # The remediation is the "what next" of a finding; without it the reader has to switch formats.
        cell.append("\n")
        cell.append("fix: ", style="bold")
        cell.append(one_line(result.rule.remediation))
    return cell


def _rules_table(report: Report, results: list[RuleResult], id_width: int) -> Table:
    """One requirement's rules. Column widths are shared so the tables line up under each other."""
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=True,
        header_style="bold",
    )
    # Minimum rather than fixed widths: on a very narrow console rich may still
    # shrink (and fold) them instead of drawing past the right edge.
    table.add_column("Verdict", min_width=max(len(v) for v in VERDICT_LABELS.values()), overflow="fold")
    table.add_column("Rule", min_width=id_width, overflow="fold")
    table.add_column("Severity", min_width=len("critical"), overflow="fold")
    table.add_column("Finding", ratio=1, overflow="fold")
    for result in results:
        table.add_row(
            verdict_text(result.verdict),
            Text(result.id),
            Text(clean(result.severity), style=SEVERITY_STYLES.get(result.severity, "")),
            _finding_cell(report, result),
        )
    return table


def _rules_list(report: Report, results: list[RuleResult]) -> Group:
    """One requirement's rules for a narrow console: a line per rule, the details indented below."""
    items: list[Text | Padding] = []
    for result in results:
        items.append(
            Text.assemble(
                verdict_text(result.verdict),
                " ",
                (result.id, "bold"),
                " ",
                (clean(result.severity), SEVERITY_STYLES.get(result.severity, "")),
            )
        )
        items.append(Padding(_finding_cell(report, result), (0, 0, 0, 2)))
    return Group(*items)


def _footer(report: Report, hidden: int) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Deployment", Text(one_line(deployment_label(report))))
    grid.add_row("Mitigations", Text(one_line(mitigations_label(report))))
    grid.add_row(
        "Profile",
        Text(f"{one_line(report.profile)} (fails on severity {one_line(report.fail_on)} and above)"),
    )
    grid.add_row("Policy engine", Text(one_line(report.engine)))
    tool = report.tool
    grid.add_row("Tool", Text(one_line(f"{tool.get('name', 'pccguard')} {tool.get('version', '')}".strip())))
    grid.add_row("Totals", _counts_text(totals(report.results)))
    if hidden:
        grid.add_row(
            "Hidden",
            Text(f"{hidden} not applicable rule(s) not listed (--show-all lists them)", style="dim"),
        )
    replaced = overridden(report)
    if replaced:
        notices = Text(style="yellow")
        for index, replaced_rule in enumerate(replaced):
            if index:
                notices.append("\n")
            notices.append(f"- {one_line(override_note(replaced_rule) or '')}")
        grid.add_row(Text("Overrides", style="bold yellow"), notices)
    if report.problems:
        problems = Text(style="red")
        for index, problem in enumerate(report.problems):
            if index:
                problems.append("\n")
            problems.append(f"- {one_line(problem)}")
        grid.add_row(Text("Problems", style="bold red"), problems)
    outcome = outcome_label(report)
    result = Text.assemble((outcome, _OUTCOME_STYLES[outcome]), " ", exit_meaning(report))
    grid.add_row("Result", result)
    return grid


def render_table(
    report: Report, *, color: bool = False, width: int | None = None, show_all: bool = False
) -> str:
    """The report as terminal text; with ``color`` it carries ANSI styles (16-colour palette).

    ``not_applicable`` rules are left out (and counted in the footer) unless
    ``show_all``.

    The console is isolated from the environment (no ``COLUMNS``, ``NO_COLOR``
    or terminal detection) so the same report always renders to the same text:
    the caller decides colour and width, typically from its own terminal check.
    """
    buffer = StringIO()
    console = Console(
        file=buffer,
        width=width or DEFAULT_WIDTH,
        color_system="standard" if color else None,
        force_terminal=color,
        force_jupyter=False,
        force_interactive=False,
        no_color=not color,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
        legacy_windows=False,
        _environ={},
    )
    title = Text.assemble(
        ("PCC compliance", "bold"),
        " · ",
        one_line(deployment_label(report)),
        " · profile ",
        one_line(report.profile),
    )
    console.print(title)
    console.print()
    narrow = console.width < NARROW_WIDTH
    id_width = max([len(r.id) for r in report.results] + [len("Rule")])
    hidden = 0
    for summary in requirement_summaries(report):
        header = Text.assemble(
            (summary.letter, "bold"),
            "  ",
            (one_line(summary.title), "bold"),
            "  ",
            verdict_text(summary.verdict),
            "  ",
            _counts_text(summary.counts),
        )
        evaluated = results_for(report, summary.letter)
        results = [r for r in evaluated if show_all or r.verdict != Verdict.NOT_APPLICABLE]
        hidden += len(evaluated) - len(results)
        body: Table | Group | Text
        if not evaluated:
            body = Text("no rules evaluated", style="dim")
        elif not results:
            body = Text(f"{len(evaluated)} not applicable (not listed)", style="dim")
        elif narrow:
            body = _rules_list(report, results)
        else:
            body = _rules_table(report, results, id_width)
        console.print(Group(header, Padding(body, (0, 0, 1, 3))))
    console.print(Rule(style="dim"))
    console.print(_footer(report, hidden))
    # Rich pads every line to the full width; trailing blanks only get in the way of diffs and pagers.
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
