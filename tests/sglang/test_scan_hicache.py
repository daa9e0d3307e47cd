"""``pccguard scan`` on SGLang's HiCache L3 storage directory: the canary with the file backend, none with pccguard's.

The scenario (``scenarios/scan_hicache.py``) backs up host KV pages holding a
canary through SGLang's controller routine into the storage backend SGLang
builds for the engine arguments; the test then runs the ``pccguard`` CLI on
the storage directory, as an operator would after a crash or a decommission.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sglang.support import run_scenario

PAGES = 4  # the scenario's prefix: four pages, the canary in the first
PLANTED = {"utf-8", "token-ids-int32", "token-ids-int64"}
#: HiCache needs SGLang's unified radix tree, which pccguard's prefix TTL cannot run on (see docs/sglang.md).
WAIVERS = """\
waivers:
  - rule: PCC-S-003
    scope: "*"
    justification: HiCache needs the unified radix tree, which the prefix TTL cannot run on
    owner: hicache-scan-test
    expires: 2099-12-31
"""
CONFIG = """\
profile: multi-tenant-baseline
waivers: {waivers}
tenancy:
  mode: multi
  identified_by: header
  tenant_header: x-pccguard-tenant
"""


def _workdir(base: Path) -> tuple[Path, str, list[int]]:
    """A work directory with a fresh canary (text and token ids) for one scenario run."""
    base.mkdir(parents=True, exist_ok=True)
    text = f"pccguard-canary-{secrets.token_hex(16)}"
    ids = [2**20 + secrets.randbelow(2**30) for _ in range(8)]
    (base / "canary.txt").write_text(text + "\n", encoding="utf-8")
    (base / "canary-ids.txt").write_text(",".join(map(str, ids)), encoding="utf-8")
    return base, text, ids


def _run(name: str, model: Path, plugin: bool, config: Path | None, work: Path) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HICACHE_SCAN_WORKDIR", str(work))
        return run_scenario(name, model, plugin, config)


def _scan(work: Path, storage: str) -> tuple[int, dict[str, Any]]:
    ids = (work / "canary-ids.txt").read_text(encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pccguard.cli",
            "scan",
            storage,
            "--canary-file",
            str(work / "canary.txt"),
            "--canary-ids",
            ids,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def plain(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work, text, _ = _workdir(tmp_path_factory.mktemp("hicache-file"))
    outcome = _run("scan_hicache", tiny_model, False, None, work)
    code, report = _scan(work, outcome["storage"])
    return {"outcome": outcome, "code": code, "report": report, "text": text}


@pytest.fixture(scope="module")
def sealed(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work, text, _ = _workdir(tmp_path_factory.mktemp("hicache-pccguard"))
    waivers = work / "waivers.yaml"
    waivers.write_text(WAIVERS, encoding="utf-8")
    config = work / "pccguard.yaml"
    config.write_text(CONFIG.format(waivers=waivers), encoding="utf-8")
    outcome = _run("scan_hicache", tiny_model, True, config, work)
    code, report = _scan(work, outcome["storage"])
    return {"outcome": outcome, "code": code, "report": report, "text": text}


def test_file_backend_pages_hold_the_canary(plain: dict[str, Any]) -> None:
    """The positive control: SGLang's own file backend writes the host pages as they are."""
    outcome = plain["outcome"]
    assert outcome["class"] == "HiCacheFile" and outcome["installed"] == []
    assert outcome["planted_in_host"] and outcome["stored"] and outcome["files"] == PAGES
    assert plain["code"] == 1 and plain["report"]["outcome"] == "found"
    assert {f["encoding"] for f in plain["report"]["findings"]} == PLANTED
    assert len({f["path"] for f in plain["report"]["findings"]}) == 1  # the one page the canary is in
    assert plain["text"] not in json.dumps(plain["report"])


def test_encrypting_backend_pages_hold_no_canary(sealed: dict[str, Any]) -> None:
    outcome = sealed["outcome"]
    assert outcome["class"] == "EncryptedHiCacheStorage" and "encrypt_offload" in outcome["installed"]
    assert outcome["planted_in_host"] and outcome["stored"] and outcome["files"] == PAGES
    assert outcome["roundtrip"], "the sealed page did not read back as it was stored"
    assert sealed["code"] == 0 and sealed["report"]["outcome"] == "clean"
    assert sealed["report"]["findings"] == [] and sealed["report"]["scanned"]["files"] == PAGES
