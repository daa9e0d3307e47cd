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
