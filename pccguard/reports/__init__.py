"""Report formats: each turns one ``Report`` into text, and none decides a verdict.

A formatter is a plain function ``(Report) -> str``; ``FORMATS`` maps the
``--format`` names to them. Formatters with presentation options take them as
keyword arguments with defaults (``render_table(report, color=True,
width=120)``, ``render_sarif(report, source_root=...)``) so the plain call
always works and is deterministic: the same report gives the same text, with
no colour codes, timestamps or host details unless the caller asks for them.

Keeping every verdict, count and exit status in ``Report`` means the formats
cannot disagree with each other or with the exit status of the run.
"""

from __future__ import annotations

from collections.abc import Callable

from pccguard.errors import UsageError
from pccguard.evaluation.results import Report
from pccguard.reports.html_report import render_html
from pccguard.reports.json_report import render_json
from pccguard.reports.junit import render_junit
from pccguard.reports.markdown import render_markdown
from pccguard.reports.sarif import build_sarif, render_sarif
from pccguard.reports.table import render_table

Formatter = Callable[[Report], str]

DEFAULT_FORMAT = "table"

FORMATS: dict[str, Formatter] = {
    "table": render_table,
    "json": render_json,
    "sarif": render_sarif,
    "junit": render_junit,
    "markdown": render_markdown,
    "html": render_html,
}


def render(report: Report, fmt: str = DEFAULT_FORMAT) -> str:
    """Render ``report`` in format ``fmt``; an unknown format is a usage error naming the known ones."""
    try:
        formatter = FORMATS[fmt]
    except KeyError:
        known = ", ".join(FORMATS)
        raise UsageError(f"unknown report format {fmt!r} (choose from: {known})") from None
    return formatter(report)


__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "Formatter",
    "build_sarif",
    "render",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_sarif",
    "render_table",
]
