"""vLLM against the one cross-engine table (``tests/conformance.py``): verdicts per rule, statuses per request.

Facts come from vLLM's own resolution of the posture's ``vllm serve``
arguments (``facts_from_config`` on the live ``VllmConfig``), and the verdicts
from the plugin's own start decision over them: the facts with the plugin's
configuration, the mitigations this adapter can install, chosen and recorded
by the shared ``decide_startup``. The statuses come from vLLM's real API app
(``build_app``, with the tenant middleware registered the way the plugin
registers it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pccguard.enforcement.config import PluginConfig
from pccguard.enforcement.tenancy.salts import is_token
from tests import conformance
from tests.asgi_call import asgi_call

PLUGIN_POSTURES = [name for name, p in conformance.POSTURES.items() if p.plugin is not None]


def _parsed(model: Path, posture: conformance.Posture) -> Any:
    from pccguard.adapters.vllm import static_check
    from pccguard.adapters.vllm.parse import parse_serve_args

    with static_check():  # resolve the configuration without the plugin enforcing on it
        return parse_serve_args(["--model", str(model), "--skip-tokenizer-init", *posture.vllm_args])


def _environ(posture: conformance.Posture) -> dict[str, str]:
    return {**os.environ, **posture.vllm_env}


def _plugin_verdicts(model: Path, name: str, tmp_path: Path) -> dict[str, str]:
    from pccguard.adapters.vllm.facts import facts_from_config
    from pccguard.adapters.vllm.runtime import hybrid, plan
    from pccguard.enforcement.decide import decide_startup
    from pccguard.enforcement.startup import declared_facts

    posture = conformance.POSTURES[name]
    config = PluginConfig.model_validate(conformance.plugin_config(posture, tmp_path / "keys.yaml"))
    parsed = _parsed(model, posture)
    facts = facts_from_config(
        parsed.config,
        environ=_environ(posture),
        engine_args=parsed.engine_args,
        frontend=parsed.args,
        live=True,
    )
    facts = declared_facts(facts, config)
    installable = plan.installable_mitigations(
        parsed.config, facts, config, parsed.engine_args, frontend_serving=True
    )
    always = [m for m in installable if m != hybrid.MITIGATION or hybrid.named_by_hand(parsed.engine_args)]
    decision = decide_startup(config.policy_settings().open(), facts, installable, always=always)
    return conformance.verdicts(decision.report.results, conformance.VERDICTS[name])


def _unprotected_verdicts(model: Path) -> dict[str, str]:
    from pccguard.adapters.vllm.facts import facts_from_config

    posture = conformance.POSTURES["no_plugin"]
    parsed = _parsed(model, posture)
    facts = facts_from_config(
        parsed.config, environ=_environ(posture), engine_args=parsed.engine_args, frontend=parsed.args
    )
    policy = (
        PluginConfig.model_validate(conformance.POSTURES["header_tenant"].plugin).policy_settings().open()
    )
    return conformance.verdicts(policy.evaluate(facts).results, conformance.VERDICTS["no_plugin"])


@pytest.mark.parametrize("name", PLUGIN_POSTURES)
def test_verdicts_match_the_table(name: str, tiny_model: Path, tmp_path: Path) -> None:
    assert _plugin_verdicts(tiny_model, name, tmp_path) == conformance.VERDICTS[name]


def test_without_the_plugin_the_same_rules_are_not_protected(tiny_model: Path) -> None:
    unprotected = _unprotected_verdicts(tiny_model)
    assert unprotected == conformance.VERDICTS["no_plugin"]
    assert conformance.differs_from_protected(unprotected) == list(conformance.ISOLATION)


def _app(model: Path, config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.entrypoints.launchers.app import build_app
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from pccguard.adapters.vllm.runtime import hooks

    path = tmp_path / "pccguard.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setenv("PCCGUARD_CONFIG", str(path))
    monkeypatch.setattr(sys, "argv", ["vllm", "serve", str(model)])  # as in the API server process
    hooks.install_middleware_hook()
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", str(model)])
    app = build_app(args, supported_tasks=("generate",))
    app.state.openai_serving_completion = conformance.ServingStandIn()
    return app


def test_statuses_match_the_table(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apps: dict[str, Any] = {}
    got: dict[str, int | str] = {}
    salts: dict[str, str | None] = {}
    for name, request in conformance.REQUESTS.items():
        if request.posture not in apps:
            posture = conformance.POSTURES[request.posture]
            config = conformance.plugin_config(posture, tmp_path / f"{request.posture}-keys.yaml")
            apps[request.posture] = _app(tiny_model, config, tmp_path, monkeypatch)
        got[name], salts[name] = conformance.send(apps[request.posture], request, asgi_call)
    assert got == conformance.STATUSES
    # vLLM carries the tenant's minted token in the body; the copied client salt never reaches the engine.
    forwarded = [name for name, outcome in got.items() if outcome == conformance.FORWARDED]
    assert all(salts[name] and is_token(salts[name]) for name in forwarded)
    assert conformance.COPIED_SALT not in salts.values()
