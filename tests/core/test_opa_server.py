"""The OPA-server engine over a real HTTP connection on loopback.

The server is ``tests/core/opa_api_server.OpaApiEmulator``: OPA's REST API
served by the regopy engine from the bundle directory ``pccguard rules bundle``
writes. It is not a real OPA (none can be installed here); what is tested is
pccguard's client path, the bundle layout and the fail-closed handling.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.opa_api_server import OpaApiEmulator
from tests.core.support import MINIMAL_FACTS, assert_clean_error, run_cli


def _verdicts(stdout: str) -> dict[str, str]:
    return {r["rule"]["id"]: r["verdict"] for r in json.loads(stdout)["results"]}


def test_bundle_layout(bundle: Path):
    manifest = json.loads((bundle / ".manifest").read_text())
    assert manifest["roots"] == ["pcc"] and len(manifest["revision"]) == 16
    assert (bundle / "data.json").is_file()
    assert (bundle / "lib" / "decision.rego").is_file()
    assert any((bundle / "rules").glob("*.rego"))


def test_same_decision_as_embedded_engine(bundle: Path, write):
    facts = write("facts.yaml", MINIMAL_FACTS)
    embedded = run_cli("check", facts, "--format", "json")
    with OpaApiEmulator(bundle, token="s3cret-token") as opa:
        remote = run_cli(
            "check",
            facts,
            "--format",
            "json",
            "--opa-url",
            opa.url,
            env={"PCCGUARD_OPA_TOKEN": "s3cret-token"},
        )
        assert opa.requests and opa.requests[0]["path"] == "/v1/data/pcc/decision"
        assert opa.requests[0]["auth"] == "Bearer s3cret-token"
    assert remote.returncode == embedded.returncode == 1, remote.stderr
    assert _verdicts(remote.stdout) == _verdicts(embedded.stdout)
    assert json.loads(remote.stdout)["engine"] == "opa"
    assert "s3cret-token" not in remote.stdout + remote.stderr


@pytest.mark.parametrize(
    ("mode", "token_env", "needle"),
    [
        ("ok", None, "HTTP 401"),
        ("error", "t", "HTTP 500"),
        ("undefined", "t", "returned no decision"),
        ("garbage", "t", "OPA server"),
        ("slow", "t", "did not answer in time"),
    ],
)
def test_server_failures_are_clean_errors(bundle: Path, write, tmp_path, mode, token_env, needle):
    facts = write("facts.yaml", MINIMAL_FACTS)
    output = tmp_path / "out.json"
    env = {"PCCGUARD_OPA_TOKEN": token_env} if token_env else {"PCCGUARD_OPA_TOKEN": ""}
    with OpaApiEmulator(bundle, token="t", mode=mode) as opa:
        result = run_cli(
            "check",
            facts,
            "--opa-url",
            opa.url,
            "--opa-timeout",
            "1",
            "--output",
            output,
            "--format",
            "json",
            env=env,
        )
    assert_clean_error(result, needle)
    assert not output.exists()
