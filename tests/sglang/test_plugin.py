"""Plugin wiring: hook targets exist in SGLang 0.5.23, the route table matches the live app."""

from __future__ import annotations

import importlib.metadata
import pkgutil

import torch  # noqa: F401  (before regopy: see pccguard.adapters.sglang.facts)

from pccguard.adapters.sglang.routes import PRIVILEGED_ROUTES


def test_entry_point_is_declared() -> None:
    points = importlib.metadata.entry_points(group="sglang.srt.plugins")
    assert any(ep.name == "pccguard" and ep.value == "pccguard.plugins.sglang:register" for ep in points)


def test_every_hook_target_resolves() -> None:
    from pccguard.adapters.sglang.runtime.hooks import hook_table
    from pccguard.enforcement.patching import import_owner

    for target, _hook, kind in hook_table():
        import_owner(target)
        owner, _, attr = target.rpartition(".")
        assert hasattr(pkgutil.resolve_name(owner), attr), target
        assert kind in ("BEFORE", "AFTER", "AROUND", "REPLACE")


def test_the_plugin_is_a_thin_entry_point() -> None:
    """The registration body lives in the adapter; the entry point only forwards to it."""
    import ast
    from pathlib import Path

    import pccguard.plugins.sglang as plugin

    tree = ast.parse(Path(plugin.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__"} == {"pccguard.adapters.sglang.runtime.hooks"}


def test_route_table_matches_live_app() -> None:
    import sglang.srt.entrypoints.http_server as http_server
    from sglang.srt.utils.auth import AuthLevel

    live = {
        route.path
        for route in http_server.app.routes
        if getattr(getattr(route, "endpoint", None), "_auth_level", None)
        in (AuthLevel.ADMIN_OPTIONAL, AuthLevel.ADMIN_FORCE)
    }
    assert live == set(PRIVILEGED_ROUTES)


PROOF = """
import json
import torch  # noqa: F401
from sglang.srt.plugins.hook_registry import HookRegistry
from pccguard.adapters.sglang.runtime import hooks, targets
from pccguard.errors import EnforcementError
from pccguard.plugins.sglang import register

def refusal():
    try:
        hooks.refuse_if_broken()
    except EnforcementError as exc:
        return exc.one_line()
    return None

register()
HookRegistry.apply_hooks()
out = {"applied": refusal()}
from sglang.srt.managers.scheduler import Scheduler
Scheduler.flush_cache = lambda self: True  # someone else replaces a hooked method
out["replaced"] = refusal()
print(json.dumps(out))
"""


def test_a_hook_replaced_after_registration_refuses_the_start() -> None:
    """In its own process (the hooks patch SGLang): the applied table passes, a replaced target is named."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", PROOF], capture_output=True, text=True, timeout=300, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, (proc.stdout + proc.stderr)[-3000:]
    out = json.loads(lines[-1])
    assert out["applied"] is None, out  # positive control: every registered hook took
    assert out["replaced"] and "Scheduler.flush_cache" in out["replaced"], out
    assert out["replaced"].startswith("pccguard refuses to start sglang")
