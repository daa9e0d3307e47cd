"""The plugin refuses to start a violating configuration, and on its own errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sglang.support import SCENARIO_TIMEOUT_S, SCENARIOS, scenario_env


@pytest.fixture(scope="module")
def outcomes(
    tiny_model: Path, plugin_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("refusal")
    malformed = tmp / "malformed.yaml"
    malformed.write_text("profile: multi-tenant-baseline\nno_such_option: true\n", encoding="utf-8")
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "broken.rego").write_text(
        "# METADATA\n# title: broken\npackage pcc.rules.broken\n\ndeny contains {\n", encoding="utf-8"
    )
    broken = tmp / "broken-rules.yaml"
    broken.write_text(
        f"profile: multi-tenant-baseline\nrules_dirs: [{json.dumps(str(rules))}]\n", encoding="utf-8"
    )
    cases = {
        "violating": {"config": str(plugin_config), "extra": {"enable_custom_logit_processor": True}},
        "malformed_config": {"config": str(malformed)},
        "broken_rules": {"config": str(broken)},
    }
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS / "refusal.py"), str(tiny_model), "plugin", json.dumps(cases)],
        cwd=SCENARIOS,
        env=scenario_env(True, plugin_config),
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, (proc.stdout + proc.stderr)[-3000:]
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def test_violating_configuration_is_refused(outcomes: dict[str, Any]) -> None:
    out = outcomes["violating"]
    assert out["refused"] is True
    assert out["error"] == "EnforcementError"
    assert "PCC-E-008" in out["message"] and "PCC-P-008" in out["message"]


@pytest.mark.parametrize("case", ["malformed_config", "broken_rules"])
def test_internal_error_refuses(case: str, outcomes: dict[str, Any]) -> None:
    out = outcomes[case]
    assert out["refused"] is True
    assert out["error"] == "EnforcementError"
    assert "refuses to start sglang" in out["message"]
