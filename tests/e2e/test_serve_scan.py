"""``pccguard probe --plant`` through ``vllm serve``, then ``pccguard scan`` over the server's own log.

With vLLM's request logging on (``--enable-log-requests`` and
``--enable-log-outputs`` at debug level) and the plugin off, the planted canary
is found in the log, as text and as the model's token ids. With the plugin on
and the same flags, the rules on request logging ask for ``allowlist_logs``:
the API server proves it before it listens, and its log holds no canary, only
allowlisted records -- pccguard's audit records among them, counting the
request log's withheld records.
"""

from __future__ import annotations

from pathlib import Path

from pccguard.adapters.vllm.log_templates import REQUEST_LOGGER
from pccguard.enforcement.guarantee_metrics import PATH
from tests.e2e.server import running_server
from tests.log_scan import guarantee_counters, scan_log_for_planted, wait_for_line

PLUGIN_OFF = "enabled: false\n"
PLUGIN_ON = "profile: multi-tenant-baseline\nmitigations: {hybrid_executor_plan: default}\n"
REQUEST_LOGGING = ("--enable-log-requests", "--enable-log-outputs")
ENV = {"PCCGUARD_ENCLAVE_PLAN": "all-enclave", "VLLM_LOGGING_LEVEL": "DEBUG"}


def test_request_logging_keeps_the_planted_canary(tiny_llama: Path, tmp_path: Path) -> None:
    with running_server(tiny_llama, tmp_path, PLUGIN_OFF, *REQUEST_LOGGING, env=ENV) as server:
        code, report = scan_log_for_planted(server.base, tiny_llama, tmp_path / "plant", server.log)
    assert code == 1 and report["outcome"] == "found"
    shapes = {f["encoding"] for f in report["findings"]}
    assert {"utf-8", "token-ids-text"} <= shapes, shapes


def test_with_the_plugin_the_same_logging_keeps_no_canary(tiny_llama: Path, tmp_path: Path) -> None:
    with running_server(tiny_llama, tmp_path, PLUGIN_ON, *REQUEST_LOGGING, env=ENV) as server:
        code, report = scan_log_for_planted(server.base, tiny_llama, tmp_path / "plant", server.log)
        metrics = server.get_text(PATH)
        # Withheld records leave as audit records at the shared audit rate (1 s): wait for the last ones.
        log = wait_for_line(server.log, f'"reason": "{REQUEST_LOGGER}"', timeout_s=5.0)
    assert code == 0 and report["outcome"] == "clean", report
    passed = [line for line in log.splitlines() if '"kind": "selftest_passed"' in line]
    assert any('"mitigation": "allowlist_logs"' in line for line in passed), log[-3000:]
    withheld = [line for line in log.splitlines() if '"kind": "log_withheld"' in line]
    assert any(f'"reason": "{REQUEST_LOGGER}"' in line for line in withheld), log[-3000:]
    assert "Application startup complete." in log  # an allowlisted line of uvicorn's still reaches the log
    # pccguard's metrics route: the API server's counters and the engine core's, in Prometheus' format.
    totals = guarantee_counters(metrics)
    assert totals[("selftest_passed", "allowlist_logs")] == 1  # proven in the API server
    assert (
        totals[("selftest_passed", "scrub_freed_kv")] > 0
    )  # proven in the engine core, read across processes
    assert totals[("residue_found", "-")] == 0
