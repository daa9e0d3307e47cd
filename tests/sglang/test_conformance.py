"""SGLang against the one cross-engine table (``tests/conformance.py``): verdicts per rule, statuses per request.

Facts come from SGLang's own parsing and resolution of the posture's
``launch_server`` arguments, and the verdicts from the plugin's own start
decision over them (``runtime_facts``, ``installable`` and ``always_installed``
of the SGLang startup, chosen and recorded by the shared ``decide_startup``).
The statuses come from SGLang's real HTTP app with the adapter's tenant
boundary in front of it, as the plugin's hook adds it at server start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch  # noqa: F401  (before regopy: see pccguard.adapters.sglang.facts)

from pccguard.enforcement.config import PluginConfig
from tests import conformance
from tests.asgi_call import asgi_call

PLUGIN_POSTURES = [name for name, p in conformance.POSTURES.items() if p.plugin is not None]


def _server_args(model: Path, posture: conformance.Posture) -> Any:
    from pccguard.adapters.sglang.facts import parse_server_args, try_resolve

    server_args, _, _ = parse_server_args(
        ["--model-path", str(model), "--device", "cpu", *posture.sglang_args]
    )
    assert try_resolve(server_args), "SGLang resolves the tiny model on the CPU"
    return server_args


def _plugin_verdicts(model: Path, name: str, tmp_path: Path) -> dict[str, str]:
    from pccguard.adapters.sglang.runtime import startup
    from pccguard.enforcement.decide import decide_startup

    posture = conformance.POSTURES[name]
    config = PluginConfig.model_validate(conformance.plugin_config(posture, tmp_path / "keys.yaml"))
    server_args = _server_args(model, posture)
    facts = startup.runtime_facts(server_args, config)
    installable = startup.installable(server_args, config, facts)
    always = startup.always_installed(config, facts)
    assert always <= installable
    decision = decide_startup(config.policy_settings().open(), facts, installable, always=always)
    return conformance.verdicts(decision.report.results, conformance.VERDICTS[name])


@pytest.mark.parametrize("name", PLUGIN_POSTURES)
def test_verdicts_match_the_table(name: str, tiny_model: Path, tmp_path: Path) -> None:
    assert _plugin_verdicts(tiny_model, name, tmp_path) == conformance.VERDICTS[name]


def test_without_the_plugin_the_same_rules_are_not_protected(tiny_model: Path) -> None:
    import os

    from pccguard.adapters.sglang.facts import facts_from_server_args

    server_args = _server_args(tiny_model, conformance.POSTURES["no_plugin"])
    facts = facts_from_server_args(server_args, os.environ, resolved=True)
    policy = (
        PluginConfig.model_validate(conformance.POSTURES["header_tenant"].plugin).policy_settings().open()
    )
    unprotected = conformance.verdicts(policy.evaluate(facts).results, conformance.VERDICTS["no_plugin"])
    assert unprotected == conformance.VERDICTS["no_plugin"]
    assert conformance.differs_from_protected(unprotected) == list(conformance.ISOLATION)


def _policy(config: dict[str, Any]) -> Any:
    """The boundary policy the plugin's ``_setup_and_run_http_server`` hook gives SGLang's app."""
    from pccguard.adapters.sglang.runtime.boundary import sglang_policy
    from pccguard.adapters.sglang.runtime.state import Enforcement

    enforcement = Enforcement(
        config=PluginConfig.model_validate(config), installed=frozenset({"tenant_cache_salt"})
    )
    return sglang_policy(enforcement, radix_cache=True)


def test_statuses_match_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sglang.srt.entrypoints import http_server

    from pccguard.adapters.sglang.runtime.boundary import SglangTenantBoundary

    app = http_server.app
    shipped = list(app.user_middleware)
    monkeypatch.setattr(app, "user_middleware", list(shipped))  # restored after the test
    monkeypatch.setattr(app, "middleware_stack", None)
    monkeypatch.setattr(app.state, "openai_serving_completion", conformance.ServingStandIn(), raising=False)
    got: dict[str, int | str] = {}
    salts: dict[str, str | None] = {}
    for posture_name in dict.fromkeys(r.posture for r in conformance.REQUESTS.values()):
        # A fresh middleware stack per posture, the boundary added as the plugin's hook adds it.
        app.user_middleware = list(shipped)
        app.middleware_stack = None
        posture = conformance.POSTURES[posture_name]
        config = conformance.plugin_config(posture, tmp_path / f"{posture_name}-keys.yaml")
        app.add_middleware(SglangTenantBoundary, policy=_policy(config))
        for name, request in conformance.REQUESTS.items():
            if request.posture == posture_name:
                got[name], salts[name] = conformance.send(app, request, asgi_call)
    assert got == conformance.STATUSES
    # SGLang applies the tenant's salt beneath the route (``generate_request``): the boundary only drops
    # the client's, so no salt at all reaches the serving handler.
    assert set(salts.values()) == {None}
