"""Shared fixtures: one small random LLaMA (GQA) with a private peft LoRA adapter, and recorded campaigns.

Everything is generated locally; the executors run real enclave and accelerator processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pccguard.enclave_runtime import synthetic
from pccguard.enclave_runtime.attacks.chosen import chosen_prompts, run_campaign
from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.plan import default_plan, insecure_obfuscation_plan

VOCAB = 256
#: Measured numbers the tests report at the end of the run (pytest_terminal_summary).
REPORT: list[str] = []


def greedy_against_reference(
    ex: HybridExecutor, reference: Any, prompt: list[int], max_new: int
) -> tuple[list[int], float]:
    """Greedy tokens of ``ex``, asserted equal to the ``transformers`` reference's, and the worst
    relative logit error over the steps (max abs difference over the reference's max abs logit)."""
    out = ex.generate(prompt, max_new, return_logits=True)
    ref_tokens, ref_logits = synthetic.reference_greedy(reference, prompt, max_new)
    assert out.tokens == ref_tokens
    assert out.logits is not None
    err = float(((out.logits - ref_logits).abs().amax(-1) / ref_logits.abs().amax(-1)).max())
    return out.tokens, err


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in REPORT:
        terminalreporter.write_line(f"enclave: {line}")


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("llama")
    base = synthetic.make_llama(
        root / "base", hidden=64, intermediate=160, layers=2, heads=4, kv_heads=2, vocab=VOCAB, seed=0
    )
    lora = synthetic.make_lora(base, root / "lora", rank=4, alpha=8.0, seed=1)
    return base, lora


@pytest.fixture(scope="session")
def reference(model_dirs: tuple[Path, Path]) -> Any:
    return synthetic.reference_model(*model_dirs)


@pytest.fixture(scope="session")
def hybrid(model_dirs: tuple[Path, Path]) -> Iterator[HybridExecutor]:
    """The default-plan executor (Mode P), with the test-only state inspection enabled."""
    with HybridExecutor.start(*model_dirs, debug_inspect=True, timeout_s=60) as ex:
        yield ex


def _campaign(
    model_dirs: tuple[Path, Path], tmp: Path, plan: Any, n: int
) -> tuple[Path, list[dict[str, Any]]]:
    transcript = tmp / f"{plan.name}.npz"
    prompts = chosen_prompts(n, VOCAB, length=4, max_new=2, seed=5)
    with HybridExecutor.start(
        *model_dirs, plan=plan, allow_insecure=plan.insecure, transcript=transcript, timeout_s=60
    ) as ex:
        run_campaign(ex, prompts)
        ex.flush_transcript()
    (tmp / f"{plan.name}.prompts.json").write_text(json.dumps(prompts))
    return transcript, prompts


@pytest.fixture(scope="session")
def default_campaign(
    model_dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, Any]]]:
    return _campaign(model_dirs, tmp_path_factory.mktemp("t_default"), default_plan(), 96)


@pytest.fixture(scope="session")
def insecure_campaign(
    model_dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, Any]]]:
    return _campaign(model_dirs, tmp_path_factory.mktemp("t_insecure"), insecure_obfuscation_plan(), 64)
