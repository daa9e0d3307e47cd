"""``pccguard check --engine vllm -- <vllm serve args>``: per-requirement verdicts on a table of argument sets.

The table runs the real CLI entry point (``pccguard.cli.main``) in this
process, so vLLM is imported once; two cases also run the installed console
script in a subprocess. Profile: ``multi-tenant-baseline``. A rule of high or
critical severity whose facts ``vllm serve`` arguments cannot establish (TEE,
transport, attestation) is undecided and fails under every profile, so each row
lists the rules its option makes fail on known facts, and every row exits 1.
Letters are the S, E, T, P, V summary: F fail, W warn, P pass, E error, D
declared, ``-`` not applicable.
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
    "declared": "D",
    "not_applicable": "-",
}
UNDECIDED = "undecided:"

#: case -> (S E T P V summary, rules that fail on known facts)
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "defaults": (
        "FFFPF",
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
    "no-prefix-caching": ("FF-PF", ["PCC-S-001"]),
    "prefix-caching-xxhash": (
        "FFFPF",
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
    "no-chunked-prefill": ("FF-PF", ["PCC-S-001"]),
    "block-size-32": ("FF-PF", ["PCC-S-001"]),
    "spec-suffix": ("FF-PF", ["PCC-S-001", "PCC-S-013"]),
    "spec-ngram": ("FF-PF", ["PCC-S-001"]),
    "spec-eagle": ("FF-PF", ["PCC-S-001"]),
    "spec-custom-class": ("FF-PF", ["PCC-S-001"]),
    "offload-native": ("FF-PF", ["PCC-S-001", "PCC-S-006"]),
    "offload-lmcache": ("FF-PF", ["PCC-S-001", "PCC-S-006"]),
    "kv-transfer-nixl": ("FFFPF", ["PCC-S-001"]),
    "pd-producer": ("FFFPF", ["PCC-S-001"]),
    "lmcache-connector": ("FF-PF", ["PCC-S-001", "PCC-S-006"]),
    "priority": ("FFFPF", ["PCC-S-001", "PCC-T-006"]),
    "tensor-parallel-2": ("FF-PF", ["PCC-S-001"]),
    "pipeline-parallel-2": ("FF-PF", ["PCC-S-001"]),
    "sleep-mode": ("FF-PF", ["PCC-S-001"]),
    "mm-cache-off": ("FF-PF", ["PCC-S-001"]),
    "log-requests": ("FF-FF", ["PCC-P-002", "PCC-S-001"]),
    "log-requests-debug": ("FF-FF", ["PCC-P-002", "PCC-S-001", "PCC-S-017"]),
    "log-outputs": ("FF-FF", ["PCC-P-003", "PCC-S-001", "PCC-S-018"]),
    "kv-events": ("FF-FF", ["PCC-P-004", "PCC-S-001", "PCC-S-019"]),
    "tracing": ("FF-PF", ["PCC-S-001"]),
    "profiler": ("FF-FF", ["PCC-P-001", "PCC-P-005", "PCC-S-001"]),
    "cached-token-details": (
        "FFFPF",
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
    "debug-dump": ("FF-FF", ["PCC-P-007", "PCC-S-001", "PCC-S-021"]),
    "response-logging-env": ("FF-FF", ["PCC-P-003", "PCC-S-001", "PCC-S-018"]),
    "usage-stats-on": ("FF-FF", ["PCC-P-011", "PCC-S-001"]),
    "api-key": ("FF-PF", ["PCC-S-001"]),
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
    failing = [r for r in report["results"] if r["verdict"] in ("fail", "error")]
    undecided = [r for r in failing if (r["reason"] or "").startswith(UNDECIDED)]
    known = sorted(r["rule"]["id"] for r in failing if r not in undecided)
    letters, rules = EXPECTED[case]
    assert (summary, known) == (letters, rules)
    assert undecided and all(r["severity"] in ("high", "critical") for r in undecided)
    assert code == 1
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
