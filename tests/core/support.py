"""Helpers for the core tests: run the real CLI in a real process, write test files."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 60) -> CliResult:
    """Run ``pccguard`` as a user would: a separate process, real files."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("PCCGUARD_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pccguard.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_error(result: CliResult, *needles: str, code: int = 2) -> None:
    """Exit ``code``, exactly one line on stderr naming the problem, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pccguard: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


MINIMAL_FACTS = """
deployment:
  name: test-deployment
  engine: vllm
  engine_version: 0.33.0
tenancy: {mode: multi}
optimizations:
  paging: {enabled: true, scrub_on_free: false}
  prefix_caching: {enabled: true, isolation: none}
"""
