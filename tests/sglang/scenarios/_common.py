"""Shared set-up for the scenario scripts: tiny model, resolved ServerArgs, plugin install.

Each scenario runs in its own process (``python scenario.py MODEL_DIR plugin|none``)
so that "with the plugin" and "without" never share patched SGLang code, and
prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch  # noqa: F401  (before regopy; see pccguard.adapters.sglang.facts)


def args() -> tuple[str, bool]:
    model, mode = sys.argv[1], sys.argv[2]
    assert mode in ("plugin", "none"), mode
    return model, mode == "plugin"


def server_args(model: str, *extra: str) -> Any:
    """Real, resolved SGLang ServerArgs for the tiny model on the CPU."""
    from sglang.srt.server_args import prepare_server_args

    sa = prepare_server_args(["--model-path", model, "--device", "cpu", "--load-format", "dummy", *extra])
    sa.resolve_once()
    return sa


def install_plugin(sa: Any) -> Any:
    """What SGLang's load_plugins() does in a scheduler process, then the startup decision."""
    from sglang.srt.plugins.hook_registry import HookRegistry

    from pccguard.adapters.sglang.runtime.startup import decide
    from pccguard.plugins.sglang import register

    register()
    HookRegistry.apply_hooks()
    return decide(sa)


def publish(sa: Any) -> None:
    """Publish the config namespaces the scheduler reads (as run_scheduler_process does)."""
    from sglang.srt.runtime_context import SpawnRanks
    from sglang.srt.runtime_context import publish as _publish

    _publish(sa, role="scheduler", ranks=SpawnRanks(0))


def report(result: dict[str, Any]) -> None:
    print(json.dumps(result, sort_keys=True), flush=True)
