"""``--format html``: one self-contained page with the same content as the Markdown report.

The page is meant to be archived as a CI artifact or mailed to an auditor, so
it has no scripts, no external fonts, images or stylesheets, and a
Content-Security-Policy that forbids loading anything even if some text got
through unescaped. All report text goes through ``html.escape`` (quotes
included); verdicts are words on a coloured badge, never a colour alone.
"""

from __future__ import annotations

import html

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

_CSS = """
:root { color-scheme: light dark; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.context { width: auto; }
code, .loc { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.badge { display: inline-block; min-width: 4.5em; text-align: center; font-weight: 600;
         font-size: .8em; padding: .1em .45em; border-radius: .3em; border: 1px solid transparent; }
.v-pass { background: #dafbe1; color: #116329; border-color: #4ac26b; }
.v-fail { background: #ffebe9; color: #a40e26; border-color: #ff8182; }
.v-declared { background: #fff1e5; color: #953800; border-color: #fb8f44; }
.v-warn { background: #fff8c5; color: #7d4e00; border-color: #d4a72c; }
.v-enforced { background: #ddf4ff; color: #0550ae; border-color: #54aeff; }
.v-waived { background: #fbefff; color: #6e40c9; border-color: #c297ff; }
.v-not_applicable { background: #f6f8fa; color: #57606a; border-color: #d0d7de; }
.v-error { background: #a40e26; color: #fff; }
.outcome { font-size: 1.05rem; }
.problems li { color: #a40e26; }
.empty { color: #57606a; font-style: italic; }
@media (prefers-color-scheme: dark) {
  body { color: #e6edf3; background: #0d1117; }
  th { background: #161b22; }
  th, td, h2 { border-color: #30363d; }
}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'"


def esc(text: str) -> str:
    """HTML-escaped text (quotes too), control characters written out, newlines as ``<br>``."""
    return "<br>".join(html.escape(line, quote=True) for line in clean(text).splitlines())


def badge(verdict: Verdict) -> str:
    return f'<span class="badge v-{verdict.value}">{VERDICT_LABELS[verdict]}</span>'


def _context(report: Report) -> list[str]:
    tool = report.tool
    rows = [
        ("Deployment", deployment_label(report)),
        ("Mitigations active", mitigations_label(report)),
        ("Profile", f"{report.profile} (fails on severity {report.fail_on} and above)"),
        ("Policy engine", report.engine),
        ("Tool", f"{tool.get('name', 'pccguard')} {tool.get('version', '')}".strip()),
    ]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return [f'<table class="context">{body}</table>']


def _summary(report: Report) -> list[str]:
    head = "".join(f'<th class="num">{esc(VERDICT_WORDS[v])}</th>' for v in VERDICT_ORDER)
    lines = ["<table>", f"<thead><tr><th>Requirement</th><th>Verdict</th>{head}</tr></thead>", "<tbody>"]
    for summary in requirement_summaries(report):
        counts = "".join(f'<td class="num">{summary.counts.get(v.value, 0)}</td>' for v in VERDICT_ORDER)
        name = esc(f"{summary.letter} — {summary.title}")
        link = f'<a href="#req-{esc(summary.letter)}">{name}</a>'
        lines.append(f"<tr><td>{link}</td><td>{badge(summary.verdict)}</td>{counts}</tr>")
    grand = totals(report.results)
    cells = "".join(f'<td class="num"><strong>{grand[v.value]}</strong></td>' for v in VERDICT_ORDER)
    lines += [f"<tr><th>Total</th><td></td>{cells}</tr>", "</tbody>", "</table>"]
    return lines


def _section(report: Report, letter: str, title: str, verdict: Verdict) -> list[str]:
    lines = [f'<h2 id="req-{esc(letter)}">{esc(letter)} — {esc(title)} {badge(verdict)}</h2>']
    results = results_for(report, letter)
    if not results:
        return [*lines, '<p class="empty">No rules evaluated for this requirement.</p>']
    lines += [
        "<table>",
        "<thead><tr><th>Verdict</th><th>Rule</th><th>Severity</th><th>Title</th>"
        "<th>Details</th><th>Location</th></tr></thead>",
        "<tbody>",
    ]
    for result in results:
        where = "<br>".join(f'<span class="loc">{esc(location_label(x))}</span>' for x in locations(result))
        info = "<br>".join(esc(line) for line in details(result))
        lines.append(
            f"<tr><td>{badge(result.verdict)}</td><td><code>{esc(result.id)}</code></td>"
            f"<td>{esc(result.severity)}</td><td>{esc(result.rule.title)}</td>"
            f"<td>{info}</td><td>{where}</td></tr>"
        )
    return [*lines, "</tbody>", "</table>"]


def render_html(report: Report) -> str:
    """The report as a complete HTML5 document, ending with a newline."""
    outcome = outcome_label(report)
    outcome_verdict = {"PASS": Verdict.PASS, "FAIL": Verdict.FAIL}.get(outcome, Verdict.ERROR)
    title = f"PCC compliance: {deployment_label(report)}"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="outcome">{badge(outcome_verdict)} {esc(exit_meaning(report))}</p>',
        *_context(report),
        "<h2>Summary</h2>",
        *_summary(report),
    ]
    if report.problems:
        lines += ["<h2>Problems</h2>", '<ul class="problems">']
        lines += [f"<li>{esc(problem)}</li>" for problem in report.problems]
        lines.append("</ul>")
    for summary in requirement_summaries(report):
        lines += _section(report, summary.letter, summary.title, summary.verdict)
    lines += ["</body>", "</html>"]
    return "\n".join(lines) + "\n"
