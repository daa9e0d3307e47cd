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
    from pccguard.plugins.sglang import _import_owner, hook_table

    for target, _hook, kind in hook_table():
        _import_owner(target)
        owner, _, attr = target.rpartition(".")
        assert hasattr(pkgutil.resolve_name(owner), attr), target
        assert kind in ("BEFORE", "AFTER", "AROUND", "REPLACE")


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
