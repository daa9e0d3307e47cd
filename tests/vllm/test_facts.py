"""vLLM facts through the shared builder and parser wrapper: one-line refusals, values printed one way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pccguard.errors import InputError


def test_bad_arguments_are_one_input_error_line(tiny_model: Path) -> None:
    from pccguard.adapters.vllm.facts import collect_facts

    for argv, expected in (
        (["--no-such-flag"], "unrecognized arguments"),
        (["--max-num-seqs", "many"], "invalid"),
    ):
        with pytest.raises(InputError, match=expected) as refused:
            collect_facts(["--model", str(tiny_model), "--skip-tokenizer-init", *argv], dict(os.environ))
        assert str(refused.value).startswith("vllm serve arguments")
        assert refused.value.exit_code == 2 and "\n" not in str(refused.value)


def test_provenance_values_print_as_in_sglang(tiny_model: Path) -> None:
    from pccguard.adapters.vllm.facts import collect_facts

    facts = collect_facts(
        ["--model", str(tiny_model), "--skip-tokenizer-init", "--no-enable-prefix-caching"], dict(os.environ)
    )
    assert facts.provenance["optimizations.prefix_caching.enabled"].value == "false"
    assert facts.provenance["optimizations.paging.block_size"].value == str(
        facts.optimizations.paging.block_size
    )


def test_a_foreign_scheduler_is_named_by_its_qualified_name(tiny_model: Path) -> None:
    from pccguard.adapters.vllm.facts import collect_facts

    facts = collect_facts(
        [
            "--model",
            str(tiny_model),
            "--skip-tokenizer-init",
            "--scheduler-cls",
            "vllm.v1.core.sched.async_scheduler.AsyncScheduler",
        ],
        dict(os.environ),
    )
    assert facts.optimizations.cache_aware_scheduling.enabled is None  # opaque code: unknown, not false
    prov = facts.provenance["optimizations.cache_aware_scheduling.enabled"]
    assert prov.value == "vllm.v1.core.sched.async_scheduler.AsyncScheduler"
    shipped = collect_facts(["--model", str(tiny_model), "--skip-tokenizer-init"], dict(os.environ))
    assert shipped.optimizations.cache_aware_scheduling.enabled is False  # control: vLLM's own scheduler
