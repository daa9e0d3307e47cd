"""``pccguard rules new ID``: scaffold a rule file and its pass/fail fixtures.

Files are created exclusively (an existing file is never overwritten, even one
that appears between the check and the write), and a directory that cannot be
created or written (``/proc``, a read-only mount, a path through a regular
file) is a one-line ``InputError`` naming it. A scaffold that fails part way
removes the files it had written, so no rule is left without its fixtures.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pccguard.errors import InputError, UsageError
from pccguard.facts.catalog import load_catalog
from pccguard.facts.mitigations import is_valid_mitigation
from pccguard.policy.metadata import RULE_ID_RE, SEVERITIES, package_for

RULE_TEMPLATE = """\
# METADATA
# title: {title}
# description: >-
#   Describe what the configuration does, why it endangers requirement {letter}
#   and what an attacker gains.
# custom:
#   id: {rule_id}
#   requirement: {letter}
#   optimization: {optimization}
#   severity: {severity}
#   threats: [describe the threat]
#   references: ["NIST SP 800-53 SC-4"]
#   mitigation: {mitigation}
#   message: "{title} (enabled: {{enabled}})"
#   remediation: Say how to fix it.
package {package}

import data.pcc.lib
import rego.v1

target := {accessor}

# The scaffold applies everywhere; narrow it to the deployments the rule is about.
applicable := true

deny contains lib.finding("{fact_path}.enabled", {{"enabled": true}}) if {{
\tlib.enabled(target)
}}

warn contains lib.unknown_finding("{fact_path}.enabled") if lib.unknown(target, "enabled")
"""

FIXTURE_TEMPLATE = """\
expect: {expect}
facts:
  deployment: {{engine: example}}
  {section}:
    {optimization}: {{enabled: {enabled}}}
"""


def scaffold_rule(
    rule_id: str,
    directory: Path,
    *,
    requirement: str,
    optimization: str,
    severity: str = "medium",
    mitigation: str | None = None,
    title: str | None = None,
) -> list[Path]:
    if not RULE_ID_RE.match(rule_id):
        raise UsageError(f"rule id {rule_id!r} must look like ORG-S-001 (upper case, dash separated)")
    catalog = load_catalog()
    if requirement not in catalog.requirements:
        raise UsageError(f"--requirement must be one of {', '.join(catalog.requirements)}")
    if optimization not in catalog.all_ids():
        raise UsageError(f"unknown catalog id {optimization!r} (see `pccguard catalog`)")
    if severity not in SEVERITIES:
        raise UsageError(f"--severity must be one of {', '.join(SEVERITIES)}")
    mitigation = mitigation or f"disable:{optimization}"
    if not is_valid_mitigation(mitigation):
        raise UsageError(f"unknown mitigation id {mitigation!r}")
    from pccguard.facts.model import Observability, Optimizations

    if optimization in Optimizations.model_fields:
        section = "optimizations"
    elif optimization in Observability.model_fields:
        section = "observability"
    else:
        raise UsageError(
            f"{optimization!r} has no facts section with an 'enabled' flag; scaffold from a related id and edit"
        )
    accessor = f'lib.opt("{optimization}")' if section == "optimizations" else f'lib.obs("{optimization}")'
    rule_path = directory / (rule_id.lower().replace("-", "_") + ".rego")
    fixture_dir = directory / "fixtures" / rule_id
    targets = [rule_path, fixture_dir / "pass.yaml", fixture_dir / "fail.yaml"]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise UsageError(f"refusing to overwrite {', '.join(existing)}")
    rule_text = RULE_TEMPLATE.format(
        title=title or f"{catalog.title_of(optimization)} is enabled",
        letter=requirement,
        rule_id=rule_id,
        optimization=optimization,
        severity=severity,
        mitigation=mitigation,
        package=package_for(rule_id),
        accessor=accessor,
        fact_path=f"{section}.{optimization}",
    )
    fixtures = [
        FIXTURE_TEMPLATE.format(expect=expect, section=section, optimization=optimization, enabled=enabled)
        for expect, enabled in (("pass", "false"), ("fail", "true"))
    ]
    _write_all(fixture_dir, dict(zip(targets, [rule_text, *fixtures], strict=True)))
    return targets


def _write_all(fixture_dir: Path, files: dict[Path, str]) -> None:
    """Create the directory and every file, or none of the files: a half scaffold would fail ``rules test``."""
    written: list[Path] = []
    try:
        fixture_dir.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            with path.open("x", encoding="utf-8") as handle:
                written.append(path)
                handle.write(text)
    except OSError as exc:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(exc, FileExistsError):
            raise UsageError(f"refusing to overwrite {exc.filename or fixture_dir}") from None
        raise InputError(
            f"cannot write the scaffold: {exc.strerror or type(exc).__name__}",
            where=str(exc.filename or fixture_dir),
        ) from None
