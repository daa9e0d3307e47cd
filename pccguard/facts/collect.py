"""Registry of engine adapters for ``--engine NAME -- <engine arguments>``.

Adapters live in ``pccguard.adapters.<engine>`` and import the engine itself,
which is heavy and optional; they are imported only when asked for, and a
missing engine is a usage error naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Protocol

from pccguard.errors import UsageError
from pccguard.facts.model import DeploymentFacts

#: The distribution each adapter needs, checked before importing anything heavy.
ENGINE_PACKAGES: dict[str, str] = {"vllm": "vllm", "sglang": "sglang"}

ADAPTERS: dict[str, str] = {
    "vllm": "pccguard.adapters.vllm.facts",
    "sglang": "pccguard.adapters.sglang.facts",
}


class FactsCollector(Protocol):
    def __call__(self, argv: list[str], environ: Mapping[str, str]) -> DeploymentFacts: ...


def get_collector(engine: str) -> FactsCollector:
    if engine not in ADAPTERS:
        raise UsageError(f"unknown engine {engine!r} (adapters: {', '.join(sorted(ADAPTERS))})")
    if importlib.util.find_spec(ENGINE_PACKAGES[engine]) is None:
        raise UsageError(
            f"the {engine} adapter needs {engine} installed (pip install 'pccguard[{engine}]'), "
            "or describe the deployment in a facts file"
        )
    try:
        module = importlib.import_module(ADAPTERS[engine])
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        raise UsageError(
            f"the {engine} adapter needs {missing!r} installed (pip install 'pccguard[{engine}]')"
        ) from None
    collector: FactsCollector = module.collect_facts
    return collector
