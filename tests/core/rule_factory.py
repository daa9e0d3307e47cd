"""Write small custom rules for the isolation, limits and visibility tests."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vllm-multitenant-default.yaml"
PROFILE = "multi-tenant-baseline"


def write_rule(folder: Path, rule_id: str, body: str, *, severity: str = "high") -> Path:
    """A custom rule file ``folder/<package>.rego`` with valid metadata and ``body`` after the imports."""
    package = rule_id.lower().replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{package}.rego"
    path.write_text(
        f"""# METADATA
# title: Custom rule {rule_id}
# description: A custom rule written by a test.
# custom:
#   id: {rule_id}
#   requirement: S
#   optimization: prefix_caching
#   severity: {severity}
#   threats: [test]
#   references: ["test"]
#   mitigation: tenant_cache_salt
#   message: "custom finding"
package pcc.rules.{package}

import rego.v1

default applicable := true

{body}
""",
        encoding="utf-8",
    )
    return path
