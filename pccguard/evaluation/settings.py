"""Build an evaluator from user-facing options; shared by the CLI and the serving plugins."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from pccguard.evaluation.evaluator import Evaluator
from pccguard.policy.engines.base import PolicyEngine
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.engines.limits import EvalLimits
from pccguard.policy.profiles import load_profile
from pccguard.policy.rulebook import Rulebook, load_rulebook
from pccguard.policy.waivers import WaiverSet, load_waivers


def build_engine(
    rulebook: Rulebook,
    *,
    opa_url: str | None = None,
    opa_token: str | None = None,
    opa_timeout: float = 5.0,
    limits: EvalLimits | None = None,
) -> PolicyEngine:
    """The embedded engine unless an OPA server URL is given."""
    if opa_url:
        from pccguard.policy.engines.opa import OpaServerEngine  # its HTTP stack costs ~0.2 s to import

        return OpaServerEngine(opa_url, token=opa_token, timeout=opa_timeout)
    return EmbeddedEngine(rulebook.modules(), limits)


def build_evaluator(
    *,
    profile: str = "pcc-strict",
    rules_dirs: list[Path] | None = None,
    opa_url: str | None = None,
    opa_token_env: str | None = None,
    opa_timeout: float = 5.0,
    limits: EvalLimits | None = None,
    unknown_high_fails: bool = True,
) -> Evaluator:
    """Rulebook + profile + engine. The OPA token is read from the environment variable
    named by ``opa_token_env``, so it never passes through arguments or config files."""
    opa_token = os.environ.get(opa_token_env) if opa_url and opa_token_env else None
    rulebook = load_rulebook(rules_dirs or [])
    chosen = load_profile(profile, rulebook)
    engine = build_engine(
        rulebook, opa_url=opa_url, opa_token=opa_token, opa_timeout=opa_timeout, limits=limits
    )
    return Evaluator(rulebook, chosen, engine, unknown_high_fails=unknown_high_fails)


def waivers_for(evaluator: Evaluator, path: Path | None, today: dt.date | None = None) -> WaiverSet | None:
    if path is None:
        return None
    return load_waivers(path, known_rules=set(evaluator.rulebook.rules), today=today)
