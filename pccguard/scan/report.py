"""``pccguard scan`` output: a table for people, JSON for scripts, SARIF for code-scanning dashboards.

The canary's text is shown in the table only as its label and a short prefix,
and never in JSON or SARIF: a canary is planted to be found, but a report
uploaded to a dashboard should not carry even a synthetic prompt around.
Paths are shown as given; in SARIF a relative path stays a relative URI and
an absolute one becomes a ``file:`` URI. Findings come in a stable order
(file, offset), so two scans of the same files give the same report.
"""

from __future__ import annotations

import json
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pccguard import __version__
from pccguard.errors import printable
from pccguard.reports.sarif import INFORMATION_URI, SARIF_SCHEMA, SARIF_VERSION, artifact_uri

from .canaries import Canary
from .search import Finding, ScanResult

SCHEMA_VERSION = 1
RULE_ID = "PCC-SCAN-001"
RULE_NAME = "CanaryPlaintextAtRest"

#: What each encoding means, for readers of any format.
ENCODINGS = {
    "utf-8": "the canary's text, UTF-8",
    "utf-16-le": "the canary's text, UTF-16 little-endian",
    "utf-16-be": "the canary's text, UTF-16 big-endian",
    "token-ids-int32": "the canary's token ids as 32-bit little-endian integers (a tensor)",
    "token-ids-int64": "the canary's token ids as 64-bit little-endian integers (a tensor)",
    "token-ids-text": "the canary's token ids printed as a list (a log or an event capture)",
}


def outcome(result: ScanResult) -> str:
    if result.errors:
        return "error"
    return "found" if result.findings else "clean"


def as_dict(result: ScanResult, canaries: list[Canary]) -> dict[str, Any]:
    """The JSON document (``schema`` 1)."""
    return {
        "schema": SCHEMA_VERSION,
        "tool": {"name": "pccguard scan", "version": __version__},
        "outcome": outcome(result),
        "canaries": [
            {"label": c.label, "text": c.text is not None, "token_sequences": len(c.token_ids)}
            for c in canaries
        ],
        "scanned": {"files": result.files, "bytes": result.bytes},
        "findings": [
            {
                "path": f.path,
                "offset": f.offset,
                "length": f.length,
                "line": f.line,
                "canary": f.canary,
                "encoding": f.encoding,
            }
            for f in result.findings
        ],
        "skipped": list(result.skipped),
        "errors": list(result.errors),
    }


def render_json(result: ScanResult, canaries: list[Canary]) -> str:
    return json.dumps(as_dict(result, canaries), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_sarif(result: ScanResult, canaries: list[Canary], *, source_root: Path | None = None) -> str:
    """SARIF 2.1.0: one rule, one ``error`` result per finding, located by file, line and bytes."""
    results = [
        {
            "ruleId": RULE_ID,
            "ruleIndex": 0,
            "kind": "fail",
            "level": "error",
            "message": {"text": f"canary {f.canary} found as {ENCODINGS[f.encoding]}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": artifact_uri(f.path, source_root)},
                        "region": {"startLine": f.line, "byteOffset": f.offset, "byteLength": f.length},
                    }
                }
            ],
            "partialFingerprints": {"pccguard-scan/v1": f"{f.canary}:{f.encoding}:{f.offset}"},
            "properties": {"canary": f.canary, "encoding": f.encoding},
        }
        for f in result.findings
    ]
    notifications = [
        {"level": "error", "message": {"text": printable(e)}, "descriptor": {"id": "PCC-SCAN-ERROR"}}
        for e in result.errors
    ]
    invocation: dict[str, Any] = {"executionSuccessful": not result.errors, "exitCode": result.exit_code}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run = {
        "tool": {
            "driver": {
                "name": "pccguard scan",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [
                    {
                        "id": RULE_ID,
                        "name": RULE_NAME,
                        "shortDescription": {"text": "A planted canary is stored in plaintext"},
                        "fullDescription": {
                            "text": "A canary sent as a prompt was found at rest (offload store, log, KV-event "
                            "capture or dump): prompts leave the engine's memory unprotected."
                        },
                        "defaultConfiguration": {"level": "error"},
                        "properties": {"security-severity": "8.0", "tags": ["security", "pcc"]},
                    }
                ],
            }
        },
        "automationDetails": {"id": "pccguard-scan/"},
        "invocations": [invocation],
        "results": results,
        "properties": {"scanned": {"files": result.files, "bytes": result.bytes}, "skipped": result.skipped},
    }
    log = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    return json.dumps(log, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _short(canary: Canary) -> str:
    if canary.text is None:
        return f"{len(canary.token_ids[0])} token ids" if canary.token_ids else ""
    return canary.text if len(canary.text) <= 12 else canary.text[:12] + "…"


def render_table(result: ScanResult, canaries: list[Canary], *, width: int = 100) -> str:
    """Findings grouped by file and shape, then one line with the outcome."""
    console = Console(file=StringIO(), width=width, color_system=None, highlight=False)
    shown = {c.label: _short(c) for c in canaries}
    if result.findings:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        for column in ("file", "canary", "found as", "count", "first at"):
            table.add_column(column, justify="right" if column == "count" else "left")
        groups: Counter[tuple[str, str, str]] = Counter(
            (f.path, f.canary, f.encoding) for f in result.findings
        )
        first: dict[tuple[str, str, str], Finding] = {}
        for f in result.findings:
            first.setdefault((f.path, f.canary, f.encoding), f)
        for key, count in groups.items():
            f = first[key]
            label = f"{f.canary} ({shown.get(f.canary, '')})"
            where = f"line {f.line}, byte {f.offset}"
            table.add_row(*(Text(printable(v)) for v in (f.path, label, f.encoding, str(count), where)))
        console.print(table)
    for line in result.errors:
        console.print(Text(f"error: {printable(line)}"))
    if result.skipped:
        console.print(Text(f"skipped {len(result.skipped)} links or special files (not followed)"))
    words = {
        "clean": "clean: no canary found",
        "found": f"FOUND: {len(result.findings)} occurrence(s) of planted canaries",
        "error": "ERROR: not every file could be read; the scan proves nothing about those",
    }
    console.print(Text(f"{words[outcome(result)]} ({result.files} file(s), {result.bytes} bytes scanned)"))
    out = console.file
    assert isinstance(out, StringIO)
    return out.getvalue()
