"""Write the audit: JSON (the record), a rich table (the terminal), an HTML page with the TTFT plot.

The plot is an inline SVG histogram per section, so the page needs no plotting
library and no network; a PNG is written as well when matplotlib is installed.

Every file is written atomically (a temporary file beside it, then a rename):
an audit interrupted while its report is being written leaves the previous
file or none, never a truncated one that a reader could take for a result.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pccguard.errors import InputError
from pccguard.files.output import write_atomic
from pccguard.probe.audit import POSITIVE_CONTROL, AuditReport, Section

COLORS = {"hit": "#d62728", "control": "#1f77b4"}


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None``: strict JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_json(report: AuditReport) -> str:
    return json.dumps(_finite(report.to_dict()), indent=2, allow_nan=False) + "\n"


def write_json(report: AuditReport, path: Path) -> None:
    write_atomic(path, render_json(report))


def _ms(value_ms: float) -> str:
    return f"{value_ms:.0f}" if value_ms >= 100 else f"{value_ms:.1f}"


def _medians(r: dict[str, Any]) -> str:
    return f"{_ms(r['median_hit_ms'])}/{_ms(r['median_control_ms'])}" if "median_hit_ms" in r else "-"


def _accuracy(r: dict[str, Any]) -> str:
    ci = r.get("classifier_ci95")
    return f"{r['classifier_accuracy']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-"


def _sharing(section: Section) -> Text:
    """The decision in words, coloured by what it means for this section (a hit is the goal of the control)."""
    shared = section.result.get("sharing_detected")
    if shared is None:
        return Text("?", style="yellow")
    expected = section.name == POSITIVE_CONTROL
    return Text("yes" if shared else "no", style="green" if shared == expected else "bold red")


#: The table's rows: a label and how a section's result shows in it.
_ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("probes hit/ctl", lambda r: f"{r.get('n_hit', 0)}/{r.get('n_control', 0)}"),
    ("TTFT ms hit/ctl", _medians),
    ("KS p", lambda r: f"{r['ks_p_value']:.2g}" if "ks_p_value" in r else "-"),
    ("accuracy [95% CI]", _accuracy),
    ("cached tokens", lambda r: "-" if r.get("cached_tokens_max") is None else str(r["cached_tokens_max"])),
)


def table(report: AuditReport) -> Table:
    """The terminal summary: one column per section, one row per measure.

    Sections are columns so the table fits an 80-column terminal (a CI log, a
    piped run) with every section name and confidence interval whole; the
    JSON report has the rest.
    """
    title = "pccguard probe" + ("" if report.complete else " -- INCOMPLETE")
    t = Table(title=title, caption=report.verdict, box=box.SIMPLE_HEAD, show_edge=False)
    t.add_column("", no_wrap=True, style="bold")
    for s in report.sections:
        t.add_column(s.name, no_wrap=True)
    for label, show in _ROWS:
        t.add_row(label, *(show(s.result) for s in report.sections))
    t.add_row("sharing", *(_sharing(s) for s in report.sections))
    return t


def print_table(report: AuditReport, console: Console | None = None) -> None:
    (console or Console()).print(table(report))


def _svg(section: Section, width: int = 560, height: int = 180, bins: int = 30) -> str:
    samples = {k: [1000 * x for x in section.samples(k)] for k in COLORS}
    values = [x for v in samples.values() for x in v]
    if not values:
        return "<p>no samples</p>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    counts = {k: [0] * bins for k in COLORS}
    for k, xs in samples.items():
        for x in xs:
            counts[k][min(bins - 1, int((x - lo) / span * bins))] += 1
    top = max(max(c) for c in counts.values()) or 1
    bar = width / bins
    parts = [f'<svg width="{width}" height="{height + 20}" xmlns="http://www.w3.org/2000/svg">']
    for k, cs in counts.items():
        for i, c in enumerate(cs):
            h = c / top * height
            parts.append(
                f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[k]}" fill-opacity="0.5"/>'
            )
    parts.append(f'<text x="0" y="{height + 15}" font-size="11">{lo:.1f} ms</text>')
    parts.append(f'<text x="{width - 70}" y="{height + 15}" font-size="11">{hi:.1f} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: AuditReport) -> str:
    rows = []
    for s in report.sections:
        rows.append(f"<h2>{html.escape(s.name)} ({html.escape(s.victim)} → {html.escape(s.attacker)})</h2>")
        rows.append(_svg(s))
        rows.append(f"<pre>{html.escape(json.dumps(_finite(s.result), indent=2))}</pre>")
    status = "complete" if report.complete else f"INCOMPLETE: {html.escape(str(report.error))}"
    page = (
        "<!doctype html><meta charset='utf-8'><title>pccguard probe</title>"
        f"<h1>pccguard probe: {html.escape(report.verdict)}</h1><p>{status}; "
        f"{report.requests} requests in {report.seconds:.1f} s. Time to first token: "
        f"<span style='color:{COLORS['hit']}'>hit probes</span> and "
        f"<span style='color:{COLORS['control']}'>fresh controls</span>.</p>" + "".join(rows)
    )
    return page + "\n"


def write_html(report: AuditReport, path: Path) -> None:
    write_atomic(path, render_html(report))


def write_png(report: AuditReport, path: Path) -> bool:
    """The same histograms as a PNG when matplotlib is available; returns whether it was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(len(report.sections) or 1, 1, figsize=(7, 2.5 * max(1, len(report.sections))))
    axes_list: list[Any] = list(axes) if hasattr(axes, "__len__") else [axes]
    for ax, s in zip(axes_list, report.sections, strict=False):
        for k, color in COLORS.items():
            ax.hist([1000 * x for x in s.samples(k)], bins=30, alpha=0.5, color=color, label=k)
        ax.set_title(s.name)
        ax.set_xlabel("time to first token (ms)")
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return True


def prepare_dir(out_dir: Path) -> None:
    """Create the report directory before probing, so an unwritable one fails before any request."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("report directory is an existing file", where=str(out_dir))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(exc.strerror or "cannot create the report directory", where=str(out_dir)) from None


def write_all(report: AuditReport, out_dir: Path) -> dict[str, str]:
    """JSON first (the record), then the page and the plot; each file atomically."""
    prepare_dir(out_dir)
    written = {"json": out_dir / "probe.json", "html": out_dir / "probe.html"}
    write_json(report, written["json"])
    write_html(report, written["html"])
    if write_png(report, out_dir / "probe.png"):
        written["png"] = out_dir / "probe.png"
    return {k: str(v) for k, v in written.items()}
