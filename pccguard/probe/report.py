"""Write the audit: JSON (the record), a rich table (the terminal), an HTML page with the TTFT plot.

The plot is an inline SVG histogram per section, so the page needs no plotting
library and no network; a PNG is written as well when matplotlib is installed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pccguard.probe.audit import AuditReport, Section

COLORS = {"hit": "#d62728", "control": "#1f77b4"}


def write_json(report: AuditReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")


def table(report: AuditReport) -> Table:
    title = "pccguard probe" + ("" if report.complete else " -- INCOMPLETE")
    t = Table(title=title, caption=report.verdict)
    for col in (
        "section",
        "hits/controls",
        "median ms (hit/ctl)",
        "KS p",
        "classifier acc [95% CI]",
        "cached",
        "sharing",
    ):
        t.add_column(col)
    for s in report.sections:
        r = s.result
        ci = r.get("classifier_ci95")
        t.add_row(
            s.name,
            f"{r.get('n_hit', 0)}/{r.get('n_control', 0)}",
            f"{r['median_hit_ms']:.1f}/{r['median_control_ms']:.1f}" if "median_hit_ms" in r else "-",
            f"{r['ks_p_value']:.2g}" if "ks_p_value" in r else "-",
            f"{r['classifier_accuracy']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-",
            str(r.get("cached_tokens_max")),
            {True: "yes", False: "no", None: "?"}[r.get("sharing_detected")],
        )
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


def write_html(report: AuditReport, path: Path) -> None:
    rows = []
    for s in report.sections:
        rows.append(f"<h2>{html.escape(s.name)} ({html.escape(s.victim)} → {html.escape(s.attacker)})</h2>")
        rows.append(_svg(s))
        rows.append(f"<pre>{html.escape(json.dumps(s.result, indent=2))}</pre>")
    status = "complete" if report.complete else f"INCOMPLETE: {html.escape(str(report.error))}"
    page = (
        "<!doctype html><meta charset='utf-8'><title>pccguard probe</title>"
        f"<h1>pccguard probe: {html.escape(report.verdict)}</h1><p>{status}; "
        f"{report.requests} requests in {report.seconds:.1f} s. Time to first token: "
        f"<span style='color:{COLORS['hit']}'>hit probes</span> and "
        f"<span style='color:{COLORS['control']}'>fresh controls</span>.</p>" + "".join(rows)
    )
    path.write_text(page, encoding="utf-8")


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
    fig.savefig(path)
    plt.close(fig)
    return True


def write_all(report: AuditReport, out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": out_dir / "probe.json", "html": out_dir / "probe.html"}
    write_json(report, written["json"])
    write_html(report, written["html"])
    if write_png(report, out_dir / "probe.png"):
        written["png"] = out_dir / "probe.png"
    return {k: str(v) for k, v in written.items()}
