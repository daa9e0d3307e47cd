"""``pccguard check --engine vllm -- <vllm serve args>``: per-requirement verdicts on a table of argument sets.

The table runs the real CLI entry point (``pccguard.cli.main``) in this
process, so vLLM is imported once; two cases also run the installed console
script in a subprocess. Profile: ``multi-tenant-baseline`` (unknown facts
warn, so each row shows what its option changes). Letters are the S, E, T,
P, V summary: F fail, W warn, P pass, E error, ``-`` not applicable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pccguard.cli import main
from tests.vllm.cases import CASES

PROFILE = "multi-tenant-baseline"
LETTER = {
    "fail": "F",
    "warn": "W",
    "pass": "P",
    "error": "E",
    "enforced": "N",
    "waived": "V",
    "not_applicable": "-",
}

#: case -> (S E T P V summary, rules that fail)
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "defaults": (
        "FFFPW",
        [
            "PCC-E-001",
            "PCC-E-012",
            "PCC-S-001",
            "PCC-S-003",
            "PCC-S-004",
            "PCC-S-005",
            "PCC-S-010",
            "PCC-T-011",
        ],
    ),
    "no-prefix-caching": ("FW-PW", ["PCC-S-001"]),
    "prefix-caching-xxhash": (
        "FFFPW",
        [
            "PCC-E-001",
            "PCC-E-002",
            "PCC-E-012",
            "PCC-S-001",
            "PCC-S-003",
            "PCC-S-004",
            "PCC-S-005",
            "PCC-S-010",
            "PCC-T-011",
        ],
    ),
    "no-chunked-prefill": ("FW-PW", ["PCC-S-001"]),
    "block-size-32": ("FW-PW", ["PCC-S-001"]),
    "spec-suffix": ("FW-PW", ["PCC-S-001", "PCC-S-013"]),
    "spec-ngram": ("FW-PW", ["PCC-S-001"]),
    "spec-eagle": ("FW-PW", ["PCC-S-001"]),
    "spec-custom-class": ("FW-PW", ["PCC-S-001"]),
    "offload-native": ("FW-PW", ["PCC-S-001", "PCC-S-006"]),
    "offload-lmcache": ("FW-PW", ["PCC-S-001", "PCC-S-006"]),
    "kv-transfer-nixl": ("FWWPW", ["PCC-S-001"]),
    "pd-producer": ("FWWPW", ["PCC-S-001"]),
    "lmcache-connector": ("FW-PW", ["PCC-S-001", "PCC-S-006"]),
    "priority": ("FWFPW", ["PCC-S-001", "PCC-T-006"]),
    "tensor-parallel-2": ("FW-PW", ["PCC-S-001"]),
    "pipeline-parallel-2": ("FW-PW", ["PCC-S-001"]),
    "sleep-mode": ("FW-PW", ["PCC-S-001"]),
    "mm-cache-off": ("FW-PW", ["PCC-S-001"]),
    "log-requests": ("FW-FW", ["PCC-P-002", "PCC-S-001"]),
    "log-requests-debug": ("FW-FW", ["PCC-P-002", "PCC-S-001", "PCC-S-017"]),
    "log-outputs": ("FW-FW", ["PCC-P-003", "PCC-S-001", "PCC-S-018"]),
    "kv-events": ("FW-FW", ["PCC-P-004", "PCC-S-001", "PCC-S-019"]),
    "tracing": ("FW-PW", ["PCC-S-001"]),
    "profiler": ("FW-FW", ["PCC-P-001", "PCC-P-005", "PCC-S-001"]),
    "cached-token-details": (
        "FFFPW",
        [
            "PCC-E-001",
            "PCC-E-012",
            "PCC-S-001",
            "PCC-S-003",
            "PCC-S-004",
            "PCC-S-005",
            "PCC-S-010",
            "PCC-S-020",
            "PCC-T-010",
            "PCC-T-011",
        ],
    ),
    "dev-mode": ("FF-FF", ["PCC-E-007", "PCC-P-005", "PCC-P-006", "PCC-P-009", "PCC-S-001", "PCC-V-002"]),
    "runtime-lora": ("FF-FF", ["PCC-E-007", "PCC-P-006", "PCC-P-009", "PCC-S-001", "PCC-V-002"]),
    "debug-dump": ("FW-FW", ["PCC-P-007", "PCC-S-001", "PCC-S-021"]),
    "response-logging-env": ("FW-FW", ["PCC-P-003", "PCC-S-001", "PCC-S-018"]),
    "usage-stats-on": ("FW-FW", ["PCC-P-011", "PCC-S-001"]),
    "api-key": ("FW-PW", ["PCC-S-001"]),
}


def _check(
    model: Path, argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, Any]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "check",
                "--engine",
                "vllm",
                "--profile",
                PROFILE,
                "--format",
                "json",
                "--",
                "--model",
                str(model),
                "--skip-tokenizer-init",
                *argv,
            ]
        )
    return code, json.loads(out.getvalue())


def test_table_covers_every_case() -> None:
    assert set(EXPECTED) == set(CASES)
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", sorted(CASES))
def test_verdicts(case: str, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv, env = CASES[case]
    code, report = _check(tiny_model, argv, env, monkeypatch)
    summary = "".join(LETTER[r["verdict"]] for r in report["requirements"])
    failing = sorted(r["rule"]["id"] for r in report["results"] if r["verdict"] in ("fail", "error"))
    letters, rules = EXPECTED[case]
    assert (summary, failing) == (letters, rules)
    assert code == (1 if failing else 0)
    assert report["deployment"]["engine"] == "vllm" and report["deployment"]["engine_version"] == "0.33.0"


def test_secret_never_appears(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pccguard.adapters.vllm.facts import collect_facts

    facts = collect_facts(
        ["--model", str(tiny_model), "--skip-tokenizer-init", "--api-key", "sk-very-secret-value"],
        dict(os.environ),
    )
    dumped = facts.model_dump_json()
    assert "sk-very-secret-value" not in dumped
    assert facts.api.auth_required is True and facts.tenancy.identified_by == "api_key"
    assert facts.provenance["api.auth_required"].value == "<redacted>"


def test_provenance_for_every_fact(tiny_model: Path) -> None:
    from pccguard.adapters.vllm.facts import collect_facts

    facts = collect_facts(
        ["--model", str(tiny_model), "--skip-tokenizer-init", "--scheduling-policy", "priority"],
        {"VLLM_SERVER_DEV_MODE": "1"},
    )
    prov = facts.provenance
    assert prov["optimizations.priority_scheduling.enabled"].kind == "flag"
    assert prov["optimizations.priority_scheduling.enabled"].name == "--scheduling-policy"
    assert prov["optimizations.prefix_caching.enabled"].kind == "default"
    assert prov["optimizations.prefix_caching.enabled"].name == "--enable-prefix-caching"
    assert prov["api.runtime_weight_updates"].kind == "env"
    assert prov["api.runtime_weight_updates"].name == "VLLM_SERVER_DEV_MODE"
    dev = [e for e in facts.endpoints if e.path == "/collective_rpc"]
    assert dev and dev[0].authenticated is False
    for section in ("optimizations", "observability"):
        for key, fact in getattr(facts, section):
            for field, value in fact:
                if value is not None and field not in ("components",):
                    assert facts.provenance_for(f"{section}.{key}.{field}") is not None, (section, key, field)


def test_cpu_rejected_options_keep_their_intent(tiny_model: Path) -> None:
    from pccguard.adapters.vllm.facts import collect_facts

    facts = collect_facts(
        [
            "--model",
            str(tiny_model),
            "--skip-tokenizer-init",
            "--enable-sleep-mode",
            "--speculative-config",
            '{"method": "suffix"}',
        ],
        {},
    )
    spec = facts.optimizations.database_speculation
    assert spec.enabled is True and spec.method == "suffix" and spec.cross_request_state is True
    assert facts.provenance["optimizations.paging.scrub_on_free"].name == "--enable-sleep-mode"


def test_bad_flag_is_a_usage_error(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--engine", "vllm", "--", "--model", str(tiny_model), "--no-such-flag", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("pccguard: error:") and "--no-such-flag" in err and err.count("\n") == 1
    assert "usage:" not in err and "Traceback" not in err


def test_unknown_connector_is_a_usage_error(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "check",
            "--engine",
            "vllm",
            "--",
            "--model",
            str(tiny_model),
            "--skip-tokenizer-init",
            "--kv-transfer-config",
            '{"kv_connector": "NoSuchConnector", "kv_role": "kv_both"}',
        ]
    )
    assert code == 2
    assert "Unsupported connector type" in capsys.readouterr().err


def _console_script() -> str:
    found = shutil.which("pccguard", path=str(Path(sys.executable).parent))
    assert found, "the pccguard console script is installed in this environment"
    return found


def test_console_script_check_and_facts(tiny_model: Path) -> None:
    """The installed command end to end: stdout is pure JSON (vLLM's logs go to stderr)."""
    env = dict(os.environ, VLLM_SERVER_DEV_MODE="1")
    base = ["--", "--model", str(tiny_model), "--skip-tokenizer-init", "--api-key", "sk-very-secret-value"]
    check = subprocess.run(
        [_console_script(), "check", "--engine", "vllm", "--profile", PROFILE, "--format", "json", *base],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert check.returncode == 1, check.stderr[-2000:]
    report = json.loads(check.stdout)
    failing = {r["rule"]["id"] for r in report["results"] if r["verdict"] == "fail"}
    assert set(EXPECTED["dev-mode"][1]) <= failing
    facts = subprocess.run(
        [_console_script(), "facts", "--engine", "vllm", *base],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert facts.returncode == 0, facts.stderr[-2000:]
    assert "sk-very-secret-value" not in facts.stdout + facts.stderr
    assert "/collective_rpc" in facts.stdout
