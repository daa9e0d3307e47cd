"""Chosen-prompt campaigns: the attacker submits labelled prompts and keeps the labels."""

from __future__ import annotations

import random
from typing import Any, Protocol


class Generates(Protocol):
    def generate(self, prompt: list[int], max_new_tokens: int, *, return_logits: bool = False) -> Any: ...


def chosen_prompts(
    n: int, vocab: int, *, length: int = 4, max_new: int = 2, seed: int = 0, tokens: tuple[int, int] = (3, 7)
) -> list[dict[str, Any]]:
    """``n`` prompts alternating between first token ``tokens[0]`` (label 0) and ``tokens[1]`` (label 1)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        prompt = [tokens[label]] + [rng.randrange(vocab) for _ in range(length - 1)]
        out.append({"prompt": prompt, "max_new": max_new, "label": label})
    return out


def run_campaign(executor: Generates, prompts: list[dict[str, Any]]) -> None:
    for p in prompts:
        executor.generate(list(p["prompt"]), int(p["max_new"]))
