"""``--format sarif``: SARIF 2.1.0 for code-scanning dashboards (GitHub, Azure DevOps, IDEs).

One run, one result per evaluated rule, passes included: a dashboard can then
show that a check ran and passed, not only what failed. How each verdict maps
onto SARIF's ``kind`` and ``level`` (SARIF only allows a level other than
``none`` on ``kind: fail``):

============== ================= ======================= =========================================
verdict        kind              level                   extra
============== ================= ======================= =========================================
fail           ``fail``          by severity (below)
declared       ``fail``          by severity             ``properties.declared``: claimed mitigation
warn           ``fail``          ``warning``             advisory or unknown fact: needs a look
waived         ``fail``          by severity             ``suppressions``: external, accepted
enforced       ``pass``          ``none``                ``properties.enforced``: the mitigation
pass           ``pass``          ``none``
not_applicable ``notApplicable`` ``none``
error          ``fail``          ``error``               ``toolExecutionNotifications`` entry
============== ================= ======================= =========================================

Severity to level: critical and high are ``error``, medium and low ``warning``,
info ``note``; a ``fail`` below ``--fail-on`` is ``note`` whatever its severity,
since the exit status ignores it and a code-scanning gate must not block on it.
``properties.failsGate`` says per result whether it fails the run (from
``Report.failing()``, as the exit status does). A waived result keeps its real level and carries the waiver as
a suppression, which is how SARIF viewers show an accepted risk (dismissed,
with the justification) instead of hiding it. An enforced result is a pass
because the deployment as it runs is compliant; its findings stay in the
message and ``properties.mitigation`` names what makes it so, so removing the
plugin shows up as a change from pass to fail under the same fingerprint.
A declared result is a fail: the mitigation is only claimed by the facts
document (no running plugin installed it), which proves nothing.

Locations come from fact provenance: a facts file gives a physical location
(file and line); a flag or environment variable has no file, so it becomes a
logical location (``vllm --enable-prefix-caching``, ``env VLLM_USE_V1``); a
fact with no provenance at all becomes a logical location naming the fact.
GitHub code scanning rejects the whole file if any result lacks a physical
location, so results whose facts name no file (and results without findings)
are also anchored at line 1 of a fallback artifact: the ``artifact`` the
caller names (a deployment manifest, a launch script), else the report's
facts file. With neither, such results carry logical locations only: valid
SARIF, but not uploadable to GitHub.

``automationDetails.id`` is ``pccguard/<profile>/<deployment>/``. The trailing
slash makes the whole id the *category*, so each deployment and profile keeps
its own alert history instead of replacing another deployment's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from pccguard.evaluation.results import Report, RuleResult, Verdict
from pccguard.facts.model import Provenance
from pccguard.policy.metadata import RuleMeta
from pccguard.reports._common import (
    VERDICT_WORDS,
    below_fail_on,
    clean,
    note,
    overridden,
    override_note,
    results_by_id,
)
from pccguard.reports.markdown import escape as _md

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://pccguard.dev"
FINGERPRINT_KEY = "pccguard/v1"

#: GitHub buckets security-severity as critical >= 9.0, high 7.0-8.9, medium 4.0-6.9, low 0.1-3.9.
SECURITY_SEVERITY: dict[str, str] = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "2.0",
    "info": "0.0",
}

SEVERITY_LEVEL: dict[str, str] = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "warning",
    "info": "note",
}

#: Rules read declared or collected facts, not heuristics over code: few false
#: positives, but a fact can be stale or incomplete, so not "very-high".
PRECISION = "high"


def severity_level(severity: str) -> str:
    return SEVERITY_LEVEL.get(severity, "warning")


def kind_and_level(result: RuleResult) -> tuple[str, str]:
    """SARIF ``kind`` and ``level`` for a verdict (see the module docstring for the table)."""
    verdict = result.verdict
    if verdict in (Verdict.FAIL, Verdict.DECLARED, Verdict.WAIVED):
        return "fail", severity_level(result.severity)
    if verdict == Verdict.WARN:
        return "fail", "warning"
    if verdict == Verdict.ERROR:
        return "fail", "error"
    if verdict == Verdict.NOT_APPLICABLE:
        return "notApplicable", "none"
    return "pass", "none"


def camel_case(title: str, fallback: str) -> str:
    """``"Freed KV blocks are reused"`` → ``"FreedKVBlocksAreReused"`` (words keep inner capitals)."""
    words = re.findall(r"[A-Za-z0-9]+", title.replace("'", ""))
    name = "".join(word[:1].upper() + word[1:] for word in words)
    return name or re.sub(r"[^A-Za-z0-9]", "", fallback)


def fingerprint(rule_id: str, deployment: str, fact: str) -> str:
    """sha256 over rule id, deployment name and primary fact path: stable across runs and hosts.

    NUL separators keep ``("A-1", "xb")`` and ``("A-1x", "b")`` apart.
    """
    return hashlib.sha256(f"{rule_id}\0{deployment}\0{fact}".encode()).hexdigest()


def primary_fact(result: RuleResult) -> str:
    """The fact a result is about: the smallest fact path among its findings ("" if none).

    The smallest rather than the first so the fingerprint does not depend on
    the order in which an engine returned a rule's findings.
    """
    facts = [f.fact for f in result.findings if f.fact]
    return min(facts) if facts else ""


def artifact_uri(path: str, source_root: Path | None) -> str:
    """A provenance file as a SARIF URI reference.

    Relative paths stay relative (code-scanning services resolve them against
    the checkout); a path under ``source_root`` is made relative to it; any
    other absolute path becomes a ``file:`` URI. Characters that are not
    allowed in a URI are percent-encoded.
    """
    pure = PurePath(path)
    if source_root is not None and pure.is_absolute():
        for root in (source_root, source_root.resolve()):
            if pure.is_relative_to(root):
                pure = pure.relative_to(root)
                break
    if pure.is_absolute():
        return Path(pure).as_uri()
    return quote(pure.as_posix(), safe="/-._~!$&'()*+,;=:@")


def _help(rule: RuleMeta) -> dict[str, str]:
    remediation = clean(rule.remediation or f"Install mitigation {rule.mitigation}.")
    references = [clean(ref) for ref in rule.references]
    text_lines = [remediation, f"Mitigation: {clean(rule.mitigation)}", "References:"]
    text_lines += [f"- {ref}" for ref in references]
    markdown_lines = [
        _md(remediation),
        "",
        f"**Mitigation:** `{_code(rule.mitigation)}`",
        "",
        "**References:**",
    ]
    markdown_lines += [f"- {_md(ref)}" for ref in references]
    return {"text": "\n".join(text_lines), "markdown": "\n".join(markdown_lines)}


def _code(text: str) -> str:
    return clean(text).replace("`", "'")


def _descriptor(result: RuleResult) -> dict[str, Any]:
    rule = result.rule
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "name": camel_case(rule.title, rule.id),
        "shortDescription": {"text": clean(rule.title)},
        "fullDescription": {"text": clean(rule.description)},
        "help": _help(rule),
        "defaultConfiguration": {"level": severity_level(result.severity)},
        "properties": {
            "tags": [f"PCC-{rule.requirement}", rule.optimization, "security"],
            "security-severity": SECURITY_SEVERITY.get(result.severity, "0.0"),
            "precision": PRECISION,
            "requirement": rule.requirement,
            "optimization": rule.optimization,
            "mitigation": rule.mitigation,
            "severity": result.severity,
            "threats": list(rule.threats),
            "references": list(rule.references),
        },
    }
    if result.severity != rule.severity:
        descriptor["properties"]["ruleSeverity"] = rule.severity
    if rule.overrides:
        descriptor["properties"]["overrides"] = rule.overrides
        descriptor["properties"]["ruleFile"] = rule.path
    if rule.help_uri:
        descriptor["helpUri"] = rule.help_uri
    return descriptor


@dataclass(frozen=True)
class _Context:
    """What every result needs besides itself: the report and where its artifacts live."""

    report: Report
    source_root: Path | None
    fallback: str | None

    @property
    def engine(self) -> str:
        return str(self.report.deployment.get("engine") or "engine")

    def uri(self, path: str) -> str:
        return artifact_uri(path, self.source_root)


def fallback_artifact(report: Report) -> str | None:
    """The file results are anchored to when their own facts name none: the report's facts file.

    That is the file most finding provenances point at (ties broken by name, so
    the choice is deterministic); ``None`` when no fact came from a file.
    """
    counts = Counter(
        f.location.uri
        for r in report.results
        for f in r.findings
        if f.location is not None and f.location.uri
    )
    if not counts:
        return None
    return min(counts, key=lambda uri: (-counts[uri], uri))


def _logical(name: str, qualified: str, kind: str) -> dict[str, str]:
    return {"name": clean(name), "fullyQualifiedName": clean(qualified), "kind": kind}


def _anchor(ctx: _Context) -> dict[str, Any] | None:
    """A physical location at the top of the fallback artifact (GitHub requires one per result)."""
    if ctx.fallback is None:
        return None
    return {"artifactLocation": {"uri": ctx.uri(ctx.fallback)}, "region": {"startLine": 1}}


def _location(location: Provenance | None, fact: str | None, ctx: _Context) -> dict[str, Any] | None:
    properties: dict[str, Any] = {}
    if fact:
        properties["fact"] = fact
    if location is not None:
        properties["provenance"] = location.kind
        if location.value is not None:
            properties["value"] = clean(location.value)
    if location is not None and location.uri:
        physical: dict[str, Any] = {"artifactLocation": {"uri": ctx.uri(location.uri)}}
        if location.line:
            physical["region"] = {"startLine": location.line}
        return {"physicalLocation": physical, "properties": properties}
    if location is None:
        if not fact:
            return None
        logical = _logical(fact, fact, "member")
    else:
        name = location.name or fact or location.kind
        if location.kind == "flag":
            logical = _logical(name, f"{ctx.engine} {name}", "member")
        elif location.kind == "env":
            logical = _logical(name, f"env {name}", "variable")
        else:
            logical = _logical(name, f"{location.kind} {name}", "member")
    entry: dict[str, Any] = {"logicalLocations": [logical], "properties": properties}
    anchor = _anchor(ctx)
    if anchor is not None:
        entry["physicalLocation"] = anchor
    return entry


def _locations(result: RuleResult, ctx: _Context) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for finding in result.findings:
        entry = _location(finding.location, finding.fact, ctx)
        if entry is not None and entry not in out:
            out.append(entry)
    if not out:
        anchor = _anchor(ctx)
        if anchor is not None:
            out.append({"physicalLocation": anchor})
    return out


def _message(result: RuleResult) -> str:
    """The finding messages; for a result without findings, what its verdict means."""
    lines = [clean(f.message) for f in result.findings]
    explanation = note(result)
    if explanation:
        lines.append(clean(explanation))
    if not lines:
        word = VERDICT_WORDS[result.verdict]
        lines.append(f"{clean(result.rule.title)}: {word}")
    return "\n".join(lines)


def _result(result: RuleResult, index: int, ctx: _Context) -> dict[str, Any]:
    report = ctx.report
    kind, level = kind_and_level(result)
    if below_fail_on(report, result):
        level = "note"
    deployment = str(report.deployment.get("name") or "unnamed")
    properties: dict[str, Any] = {
        "verdict": result.verdict.value,
        "severity": result.severity,
        "requirement": result.rule.requirement,
        "optimization": result.rule.optimization,
        "deployment": deployment,
        "profile": report.profile,
        "failsGate": any(failing.id == result.id for failing in report.failing()),
    }
    if result.reason:
        properties["reason"] = clean(result.reason)
    if result.verdict == Verdict.ENFORCED:
        properties["enforced"] = True
        properties["mitigation"] = result.rule.mitigation
    if result.verdict == Verdict.DECLARED:
        # A mitigation only the facts document claims: it fails like ``fail``, and says why it is not enforced.
        properties["declared"] = True
        properties["mitigation"] = result.rule.mitigation
    if result.findings:
        properties["findings"] = [
            {"fact": f.fact, "params": f.params, "unknown": f.unknown} for f in result.findings
        ]
    entry: dict[str, Any] = {
        "ruleId": result.id,
        "ruleIndex": index,
        "kind": kind,
        "level": level,
        "message": {"text": _message(result)},
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(result.id, deployment, primary_fact(result))},
        "properties": properties,
    }
    found = _locations(result, ctx)
    if found:
        entry["locations"] = found
    if result.verdict == Verdict.WAIVED:
        waiver = result.waiver
        suppression: dict[str, Any] = {
            "kind": "external",
            "status": "accepted",
            "justification": clean(waiver.justification if waiver else result.reason or "waived"),
        }
        if waiver is not None:
            suppression["properties"] = {
                "owner": clean(waiver.owner),
                "expires": waiver.expires,
                "scope": clean(waiver.scope),
                "status": waiver.status,
            }
        entry["suppressions"] = [suppression]
    return entry


def _notifications(report: Report, rule_index: dict[str, int]) -> list[dict[str, Any]]:
    """Engine errors per rule (with the rule they concern), then the report's problems."""
    notes: list[dict[str, Any]] = []
    for result in results_by_id(report):
        if result.verdict != Verdict.ERROR:
            continue
        notes.append(
            {
                "level": "error",
                "message": {"text": clean(note(result) or "policy engine error")},
                "descriptor": {"id": "pccguard/engine-error"},
                "associatedRule": {"id": result.id, "index": rule_index[result.id]},
            }
        )
    for problem in report.problems:
        notes.append(
            {"level": "error", "message": {"text": clean(problem)}, "descriptor": {"id": "pccguard/problem"}}
        )
    for result in overridden(report):
        notes.append(
            {
                "level": "warning",
                "message": {"text": clean(override_note(result) or "")},
                "descriptor": {"id": "pccguard/rule-overridden"},
                "associatedRule": {"id": result.id, "index": rule_index[result.id]},
            }
        )
    return notes


def build_sarif(
    report: Report, *, source_root: Path | None = None, artifact: str | None = None
) -> dict[str, Any]:
    """The SARIF log as a JSON-ready mapping (for callers that merge runs or post-process).

    ``source_root`` makes absolute artifact paths under it relative (what
    code-scanning services expect). ``artifact`` is the file a result is
    anchored to when none of its facts came from a file (facts collected from
    flags, environment or a live engine, and results without findings);
    without it, the report's facts file is used when there is one.
    """
    ctx = _Context(report, source_root, artifact or fallback_artifact(report))
    results = results_by_id(report)
    rule_index = {r.id: i for i, r in enumerate(results)}
    version = report.tool.get("version", "0.0.0")
    deployment = str(report.deployment.get("name") or "unnamed")
    invocation: dict[str, Any] = {
        "executionSuccessful": not report.has_errors(),
        "exitCode": report.exit_code(),
    }
    notifications = _notifications(report, rule_index)
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": report.tool.get("name", "pccguard"),
                "version": version,
                "semanticVersion": version,
                "informationUri": INFORMATION_URI,
                "rules": [_descriptor(r) for r in results],
            }
        },
        "automationDetails": {"id": clean(f"pccguard/{report.profile}/{deployment}/")},
        "invocations": [invocation],
        "results": [_result(r, rule_index[r.id], ctx) for r in results],
        "properties": {
            "schemaVersion": report.schema_version,
            "profile": report.profile,
            "policyEngine": report.engine,
            "failOn": report.fail_on,
            "deployment": report.deployment,
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(report: Report, *, source_root: Path | None = None, artifact: str | None = None) -> str:
    """SARIF 2.1.0 text, keys sorted, deterministic for a given report."""
    log = build_sarif(report, source_root=source_root, artifact=artifact)
    return json.dumps(log, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
