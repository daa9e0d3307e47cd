"""Plant a canary through a live server with ``pccguard probe --plant``, then ``pccguard scan`` its log.

Engine-neutral: vLLM's ``vllm serve`` and SGLang's ``launch_server`` tests both
use it, each on its own server and log file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pccguard.cli import main


def probe(base: str, model: Path, *argv: str) -> int:
    """``pccguard probe`` against the server at ``base`` (its ``/v1``), in this process; its exit status."""
    from pccguard.probe.cli import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args([f"{base}/v1", "--model", str(model), *argv]))


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


def guarantee_counters(text: str) -> dict[tuple[str, str], float]:
    """pccguard's metrics route as ``{(kind, mitigation): value}``.

    Read with ``prometheus_client``'s own parser where it is installed (vLLM's
    environment); SGLang's has no ``prometheus_client``, and there every sample
    line must match the one shape the core writes (the same function in both
    engines, whose output the published parser reads in vLLM's tests).
    """
    import re

    from pccguard.enforcement.guarantee_metrics import FAMILY

    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        sample = re.compile(rf'^{FAMILY}_total\{{kind="([a-z_]+)",mitigation="([A-Za-z0-9_.:\-]+)"\}} (\d+)$')
        totals: dict[tuple[str, str], float] = {}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            found = sample.match(line)
            assert found is not None, f"not a sample of {FAMILY}: {line!r}"
            totals[(found.group(1), found.group(2))] = float(found.group(3))
        return totals
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == FAMILY]
    assert family.type == "counter"
    return {
        (s.labels["kind"], s.labels["mitigation"]): s.value
        for s in family.samples
        if s.name == f"{FAMILY}_total"
    }


def wait_for_line(log: Path, text: str, timeout_s: float) -> str:
    """The log's text once a line holds ``text``, or as it is when ``timeout_s`` ran out (the test then fails)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        content = log.read_text(encoding="utf-8", errors="replace")
        if text in content or time.monotonic() > deadline:
            return content
        time.sleep(0.1)
