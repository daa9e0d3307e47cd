"""The engine-neutral fact builder and parser wrapper that both engine adapters use."""

from __future__ import annotations

import argparse

import pytest
from pydantic import BaseModel

from pccguard.errors import InputError
from pccguard.evaluation.results import Verdict
from pccguard.evaluation.settings import build_evaluator
from pccguard.facts.arguments import first_line, parse_engine_args
from pccguard.facts.builder import REDACTED, FactBuilder, declare_mitigations, qualname, show
from pccguard.facts.model import DeploymentFacts, Provenance

FLAG = Provenance(kind="flag", name="--x")


def test_qualname_names_classes_functions_and_keeps_dotted_paths() -> None:
    assert qualname(FactBuilder) == "pccguard.facts.builder.FactBuilder"
    assert qualname(show) == "pccguard.facts.builder.show"
    assert qualname("my.module.Scheduler") == "my.module.Scheduler"


@pytest.mark.parametrize(
    ("value", "secret", "shown"),
    [
        (None, False, None),
        (True, False, "true"),
        (False, False, "false"),
        (16, False, "16"),
        ({"b": 1, "a": [2]}, False, '{"a": [2], "b": 1}'),
        ("two\nlines", False, "two lines"),
        ("sk-secret", True, REDACTED),
        (True, True, REDACTED),
        ("", True, ""),  # an empty secret was not given: shown as it is, not as redacted
        (None, True, None),
    ],
)
def test_show_prints_values_one_way(value: object, secret: bool, shown: str | None) -> None:
    assert show(value, secret=secret) == shown


def test_show_cuts_long_values() -> None:
    text = show("x" * 500)
    assert text is not None and len(text) == 200 and text.endswith("...")
    assert show("x" * 200) == "x" * 200  # control: at the limit nothing is cut


def test_builder_sets_each_fact_with_its_provenance() -> None:
    b = FactBuilder()
    b.set("deployment.engine", "e", FLAG)
    b.set("optimizations.paging.enabled", True, FLAG)
    b.set_list("endpoints", [{"path": "/a", "purpose": "admin"}], [FLAG])
    facts = b.build()
    assert b.get("optimizations.paging.enabled") is True and b.get("optimizations.nothing") is None
    assert facts.optimizations.paging.enabled is True
    assert set(facts.provenance) == {"deployment.engine", "optimizations.paging.enabled", "endpoints.0"}


def test_builder_refuses_a_value_overwritten_by_a_section() -> None:
    b = FactBuilder()
    b.set("deployment.engine", "e", FLAG)
    with pytest.raises(TypeError, match="already a value"):
        b.set("deployment.engine.name", "x", FLAG)


def test_builder_refuses_a_list_without_one_provenance_per_item() -> None:
    with pytest.raises(ValueError, match="2 items but 1"):
        FactBuilder().set_list("endpoints", [{"path": "/a"}, {"path": "/b"}], [FLAG])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", add_help=True)
    parser.add_argument("--size", type=int, default=1)
    return parser


def test_engine_parser_errors_are_one_input_error_line() -> None:
    assert parse_engine_args(_parser(), ["--size", "3"], "engine arguments").size == 3  # control
    for argv, expected in (
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--size", "many"], "invalid int value"),
        (["--help"], "help is not supported here"),
    ):
        with pytest.raises(InputError, match=expected) as refused:
            parse_engine_args(_parser(), argv, "engine arguments")
        assert refused.value.exit_code == 2
        assert "\n" not in str(refused.value) and "usage:" not in str(refused.value)
        assert str(refused.value).startswith("engine arguments")


def test_an_engine_action_that_raises_is_one_input_error_line() -> None:
    class Broken(argparse.Action):
        def __call__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("engine bug\nTraceback (most recent call last): ...")

    parser = _parser()
    parser.add_argument("--broken", action=Broken)
    with pytest.raises(InputError, match=r"engine arguments rejected: RuntimeError: engine bug$"):
        parse_engine_args(parser, ["--broken", "x"], "engine arguments")


def test_an_engine_action_that_exits_is_one_input_error_line() -> None:
    class Exits(argparse.Action):
        def __call__(self, *args: object, **kwargs: object) -> None:
            raise SystemExit(3)

    parser = _parser()
    parser.add_argument("--exits", action=Exits)
    with pytest.raises(InputError, match=r"rejected \(exit 3\)"):
        parse_engine_args(parser, ["--exits", "x"], "engine arguments")


def test_first_line_of_a_validation_error_is_its_first_message() -> None:
    class Config(BaseModel):
        size: int

    with pytest.raises(Exception) as caught:
        Config.model_validate({"size": "many"})
    assert first_line(caught.value).startswith("ValidationError: Input should be a valid integer")


def _offload_facts() -> DeploymentFacts:
    return DeploymentFacts.model_validate(
        {
            "deployment": {"name": "d", "engine": "e"},
            "optimizations": {"disk_offloading": {"enabled": True, "tiers": ["disk"], "encrypted": False}},
        }
    )


def test_a_mitigation_named_by_the_arguments_is_declared_never_enforced() -> None:
    evaluator = build_evaluator(profile="multi-tenant-baseline")
    plain = evaluator.evaluate(_offload_facts())
    declared = declare_mitigations(
        _offload_facts(), ["encrypt_offload"], Provenance(kind="flag", name="--storage-backend")
    )
    named = evaluator.evaluate(declared)
    assert declared.runtime.plugin_active is False
    assert declared.provenance["runtime.mitigations_active"].name == "--storage-backend"
    verdicts = {r.id: r.verdict for r in plain.results}, {r.id: r.verdict for r in named.results}
    assert verdicts[0]["PCC-S-006"] == Verdict.FAIL  # control: the finding is there
    assert verdicts[1]["PCC-S-006"] == Verdict.DECLARED
