"""``pccguard probe --plant`` through ``vllm serve``, then ``pccguard scan`` over the server's own log.

With vLLM's request logging on (``--enable-log-requests`` at debug level, the
plugin off) the planted canary is found in the log, as text and as the
model's token ids; with the plugin on, its log holds no prompt
(``test_serve_probe.py::test_with_plugin_no_cross_tenant_sharing`` scans it).
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.server import running_server
from tests.log_scan import scan_log_for_planted

PLUGIN_OFF = "enabled: false\n"


def test_request_logging_keeps_the_planted_canary(tiny_llama: Path, tmp_path: Path) -> None:
    env = {"PCCGUARD_ENCLAVE_PLAN": "all-enclave", "VLLM_LOGGING_LEVEL": "DEBUG"}
    with running_server(tiny_llama, tmp_path, PLUGIN_OFF, "--enable-log-requests", env=env) as server:
        code, report = scan_log_for_planted(server.base, tiny_llama, tmp_path / "plant", server.log)
    assert code == 1 and report["outcome"] == "found"
    shapes = {f["encoding"] for f in report["findings"]}
    assert {"utf-8", "token-ids-text"} <= shapes, shapes
