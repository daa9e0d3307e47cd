"""The policy settings of a check or a start, and the one way to build an evaluator from them.

``pccguard check`` builds :class:`PolicySettings` from its arguments and the
serving plugins from their ``PluginConfig``, so a profile, a rules directory, a
waiver file or an OPA server means the same thing, and is loaded by the same
code, whether a deployment is checked from a file or refused at start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pccguard.errors import InputError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import Report
from pccguard.facts.model import DeploymentFacts
from pccguard.policy.engines.base import PolicyEngine
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.engines.limits import EvalLimits
from pccguard.policy.metadata import SEVERITIES
from pccguard.policy.profiles import DEFAULT_PROFILE, load_profile
from pccguard.policy.rulebook import Rulebook, load_rulebook
from pccguard.policy.waivers import WaiverSet, load_waivers

#: The environment variable that holds the OPA bearer token unless the settings name another.
DEFAULT_OPA_TOKEN_ENV = "PCCGUARD_OPA_TOKEN"


#: The options ``pccguard check`` and the serving plugins' config files share, under the same names.
SHARED_OPTIONS = ("profile", "rules_dirs", "waivers", "opa_url", "opa_token_env", "opa_timeout", "fail_on")


@dataclass(frozen=True)
class PolicySettings:
    """What selects and runs the policy: profile, rules, waivers, engine, threshold and bounds.

    The OPA token is never a field: ``opa_token_env`` names the environment
    variable it is read from when the engine is built, so it never passes
    through arguments, configuration files or ``repr``.
    """

    profile: str = DEFAULT_PROFILE
    #: Extra rules directories, in order (stored as a tuple: the settings are frozen).
    rules_dirs: Sequence[Path] = ()
    waivers: Path | None = None
    opa_url: str | None = None
    opa_token_env: str | None = DEFAULT_OPA_TOKEN_ENV
    opa_timeout: float = 5.0
    fail_on: str = "low"
    #: Bounds on each embedded evaluation; ``None`` keeps the defaults of ``EvalLimits``.
    limits: EvalLimits | None = None
    #: See ``Evaluator.unknown_high_fails``: ``False`` only for a serving plugin's start decision.
    unknown_high_fails: bool = True

    @classmethod
    def from_options(cls, options: object, **rest: Any) -> PolicySettings:
        """The settings named the same way in ``pccguard check``'s arguments and a plugin's config file.

        ``options`` is either of them; ``rest`` sets what only one of them has
        (the CLI's evaluation bounds, the plugin's start-time ``unknown_high_fails``).
        """
        shared = {name: getattr(options, name) for name in SHARED_OPTIONS}
        return cls(**shared, **rest)

    def __post_init__(self) -> None:
        if self.fail_on not in SEVERITIES:
            raise InputError(f"fail_on must be one of {', '.join(SEVERITIES)}, not {self.fail_on!r}")
        object.__setattr__(self, "rules_dirs", tuple(self.rules_dirs))

    def evaluator(self) -> Evaluator:
        """Rulebook + profile + engine: the one constructor of an evaluator from user-facing options."""
        rulebook = load_rulebook(list(self.rules_dirs))
        profile = load_profile(self.profile, rulebook)
        engine = build_engine(
            rulebook,
            opa_url=self.opa_url,
            opa_token=self._opa_token(),
            opa_timeout=self.opa_timeout,
            limits=self.limits,
        )
        return Evaluator(rulebook, profile, engine, unknown_high_fails=self.unknown_high_fails)

    def open(self) -> LoadedPolicy:
        """The evaluator with the waivers (checked against its rulebook) and threshold it runs with."""
        evaluator = self.evaluator()
        waivers = None
        if self.waivers is not None:
            waivers = load_waivers(self.waivers, known_rules=set(evaluator.rulebook.rules))
        return LoadedPolicy(evaluator=evaluator, waivers=waivers, fail_on=self.fail_on)

    def _opa_token(self) -> str | None:
        if not self.opa_url or not self.opa_token_env:
            return None
        return os.environ.get(self.opa_token_env)


@dataclass(frozen=True)
class LoadedPolicy:
    """Settings made ready: every evaluation of a check or a start goes through :meth:`evaluate`."""

    evaluator: Evaluator
    waivers: WaiverSet | None
    fail_on: str

    def evaluate(self, facts: DeploymentFacts) -> Report:
        return self.evaluator.evaluate(facts, waivers=self.waivers, fail_on=self.fail_on)


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


def build_evaluator(**options: Any) -> Evaluator:
    """Shorthand for ``PolicySettings(**options).evaluator()`` (e.g. ``build_evaluator(profile=...)``)."""
    return PolicySettings(**options).evaluator()
