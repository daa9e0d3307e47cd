"""Count the rulebook evaluations of a check or a start, on the real embedded engine.

``PolicySettings.evaluator()`` builds its engine through
``pccguard.evaluation.settings.build_engine``; the wrapper installed here lets
that real function build the real engine, then wraps that instance's own
``evaluate`` so each call is recorded (the input document and the decision)
and answered by the engine itself. Nothing about the evaluation is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

import pccguard.evaluation.settings as settings_module


@dataclass
class Evaluations:
    """Every ``evaluate`` call made on engines built while counting, in order."""

    inputs: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)


def count_evaluations(monkeypatch: pytest.MonkeyPatch) -> Evaluations:
    seen = Evaluations()
    real_build = settings_module.build_engine

    def build_engine(*args: Any, **kwargs: Any) -> Any:
        engine = real_build(*args, **kwargs)
        real_evaluate = engine.evaluate

        def evaluate(input_doc: dict[str, Any]) -> Any:
            seen.inputs.append(input_doc)
            decision = real_evaluate(input_doc)
            seen.decisions.append(decision)
            return decision

        engine.evaluate = evaluate  # on this instance only
        return engine

    monkeypatch.setattr(settings_module, "build_engine", build_engine)
    return seen
