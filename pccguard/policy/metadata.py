"""Parse ``# METADATA`` annotations from Rego files ourselves.

regopy has no ``rego.metadata`` builtins (they silently return undefined), so
pccguard reads the YAML comment block bound to each ``package`` statement. This
keeps metadata engine-agnostic: the embedded engine and an OPA server read the
same rule files, and reports carry the same ids, severities and messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pccguard.errors import RuleError

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK: dict[str, int] = {s: len(SEVERITIES) - i for i, s in enumerate(SEVERITIES)}

RULE_ID_RE = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
PACKAGE_RE = re.compile(r"^package\s+([A-Za-z_][\w.]*)\s*$", re.M)


def package_for(rule_id: str) -> str:
    """The package a rule id must live in: ``PCC-S-001`` → ``pcc.rules.pcc_s_001``."""
    return "pcc.rules." + rule_id.lower().replace("-", "_")


class RuleMeta(BaseModel):
    """Everything pccguard knows about a rule besides its Rego body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    description: str
    requirement: Literal["S", "E", "T", "P", "V"]
    optimization: str = Field(description="Catalog id (optimization or observability risk)")
    severity: Severity
    threats: list[str] = Field(min_length=1)
    references: list[str] = Field(min_length=1)
    mitigation: str
    message: str = Field(description="Template; {name} placeholders come from finding params or facts")
    remediation: str | None = None
    help_uri: str | None = None
    package: str = ""
    path: str = ""
    line: int = 1
    overrides: str | None = Field(
        default=None, description="The shipped rule file this custom rule replaces (same id), if any"
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not RULE_ID_RE.match(value):
            raise ValueError(f"rule id {value!r} must look like PCC-S-001")
        return value


_CUSTOM_KEYS = {
    "id", "requirement", "optimization", "severity", "threats", "references",
    "mitigation", "message", "remediation", "help_uri",
}  # fmt: skip


@dataclass
class ParsedRuleFile:
    path: Path
    package: str
    meta: RuleMeta | None
    source: str
    errors: list[str] = field(default_factory=list)


def _metadata_block(lines: list[str], package_index: int) -> tuple[str, int] | None:
    """The comment block that ends right above ``package`` and starts with ``# METADATA``."""
    start = package_index - 1
    while start >= 0 and lines[start].lstrip().startswith("#"):
        start -= 1
    block = lines[start + 1 : package_index]
    for offset, raw in enumerate(block):
        if raw.strip() == "# METADATA":
            body = [re.sub(r"^\s*# ?", "", x) for x in block[offset + 1 :]]
            return "\n".join(body), start + 2 + offset
    return None


def parse_rule_file(path: Path) -> ParsedRuleFile:
    """Parse one ``.rego`` file; problems are collected, not raised, so lint can list them all."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read rule file: {exc}", where=str(path)) from None
    lines = source.splitlines()
    match = PACKAGE_RE.search(source)
    if not match:
        return ParsedRuleFile(path, "", None, source, ["no package statement"])
    package = match.group(1)
    package_index = source[: match.start()].count("\n")
    found = _metadata_block(lines, package_index)
    if found is None:
        return ParsedRuleFile(path, package, None, source, [])
    text, line = found
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{line + mark.line + 1}" if mark else f":{line}"
        return ParsedRuleFile(path, package, None, source, [f"{path}{at}: METADATA is not valid YAML"])
    errors: list[str] = []
    meta = _meta_from_annotation(raw, package, path, line, errors)
    return ParsedRuleFile(path, package, meta, source, errors)


def _meta_from_annotation(
    raw: Any, package: str, path: Path, line: int, errors: list[str]
) -> RuleMeta | None:
    where = f"{path}:{line}"
    if not isinstance(raw, dict):
        errors.append(f"{where}: METADATA must be a mapping")
        return None
    custom = raw.get("custom")
    if not isinstance(custom, dict):
        errors.append(f"{where}: METADATA has no 'custom' mapping with the rule id and severity")
        return None
    unknown = sorted(set(custom) - _CUSTOM_KEYS)
    if unknown:
        errors.append(f"{where}: unknown METADATA custom keys: {', '.join(unknown)}")
    if raw.get("scope", "package") != "package":
        errors.append(f"{where}: METADATA scope must be 'package'")
    fields = {k: v for k, v in custom.items() if k in _CUSTOM_KEYS}
    fields.update(
        title=raw.get("title"),
        description=raw.get("description"),
        package=package,
        path=str(path),
        line=line,
    )
    try:
        meta = RuleMeta.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        errors.append(f"{where}: METADATA {loc}: {first['msg'].lower()}")
        return None
    if package != package_for(meta.id):
        errors.append(f"{where}: rule {meta.id} must be in package {package_for(meta.id)}, not {package}")
    return meta
