"""``pccguard probe --plant`` through ``vllm serve``, then ``pccguard scan`` over the server's own log.

With vLLM's request logging on (``--enable-log-requests`` at debug level, the
plugin off) the planted canary is found in the log, as text and as the
model's token ids; with the plugin on, its log holds no prompt
(``test_serve_probe.py::test_with_plugin_no_cross_tenant_sharing`` scans it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pccguard.cli import main
from tests.e2e.server import probe, running_server

PLUGIN_OFF = "enabled: false\n"


def scan_log_for_planted(base: str, model: Path, root: Path, log: Path) -> tuple[int, dict[str, Any]]:
    """Plant one canary through the server at ``base`` as tenant alice, then scan its log; (exit, report)."""
    root.mkdir(parents=True, exist_ok=True)
    canary_file = root / "canary.txt"
    plant = ("--victim-tenant", "alice", "--timeout", "30", "--plant", str(canary_file))
    assert probe(base, model, *plant) == 0
    assert canary_file.read_text(encoding="utf-8").startswith("pccguard-canary-")
    out = root / "scan.json"
    argv = ["scan", str(log), "--canary-file", str(canary_file), "--tokenizer", str(model)]
    code = main([*argv, "--format", "json", "-o", str(out)])
    return code, json.loads(out.read_text(encoding="utf-8"))


def test_request_logging_keeps_the_planted_canary(tiny_llama: Path, tmp_path: Path) -> None:
    env = {"PCCGUARD_ENCLAVE_PLAN": "all-enclave", "VLLM_LOGGING_LEVEL": "DEBUG"}
    with running_server(tiny_llama, tmp_path, PLUGIN_OFF, "--enable-log-requests", env=env) as server:
        code, report = scan_log_for_planted(server.base, tiny_llama, tmp_path / "plant", server.log)
    assert code == 1 and report["outcome"] == "found"
    shapes = {f["encoding"] for f in report["findings"]}
    assert {"utf-8", "token-ids-text"} <= shapes, shapes
