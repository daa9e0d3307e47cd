"""Property-based tests: random facts documents are a verdict or a clean error, never a crash or a false pass."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pccguard.errors import PccguardError
from pccguard.evaluation.evaluator import Evaluator
from pccguard.evaluation.results import Verdict
from pccguard.facts.load import facts_from_data
from pccguard.facts.model import Optimizations
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.profiles import load_profile
from pccguard.policy.rulebook import load_rulebook

RULEBOOK = load_rulebook()
ENGINE = EmbeddedEngine(RULEBOOK.modules())
EVALUATORS = {
    name: Evaluator(RULEBOOK, load_profile(name, RULEBOOK), ENGINE)
    for name in ("pcc-strict", "multi-tenant-baseline")
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
OPT_IDS = sorted(Optimizations.model_fields)
FIELDS = [
    "enabled",
    "isolation",
    "ttl_seconds",
    "scrub_on_free",
    "encrypted",
    "method",
    "cross_request_state",
    "crosses_hosts",
]

# Documents that are mostly valid: a base with random optimization settings and random values in known places.
settings_values = (
    st.none()
    | st.booleans()
    | st.sampled_from(["none", "client_salt", "server_salt", "suffix", "ngram"])
    | st.floats(0, 1e6)
)
structured = st.fixed_dictionaries(
    {
        "deployment": st.fixed_dictionaries({"engine": st.sampled_from(["vllm", "sglang", "tgi"])}),
        "tenancy": st.fixed_dictionaries({"mode": st.sampled_from([None, "single", "multi"])}),
        "optimizations": st.dictionaries(
            st.sampled_from(OPT_IDS),
            st.dictionaries(st.sampled_from(FIELDS), settings_values, max_size=4),
            max_size=8,
        ),
    }
)


def outcome(doc: Any, profile: str) -> None:
    try:
        facts = facts_from_data(copy.deepcopy(doc))
    except PccguardError as exc:
        line = exc.one_line()
        assert "\n" not in line and line
        return
    report = EVALUATORS[profile].evaluate(facts)
    assert {r.verdict for r in report.results} <= set(Verdict)
    assert not any(r.verdict == Verdict.ERROR for r in report.results), (
        "valid facts never make the engine fail"
    )
    if report.exit_code() == 0:
        assert not report.failing()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values, profile=st.sampled_from(sorted(EVALUATORS)))
def test_arbitrary_json_is_a_verdict_or_a_clean_error(doc, profile):
    outcome(doc, profile)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=structured, profile=st.sampled_from(sorted(EVALUATORS)))
def test_structured_random_facts(doc, profile):
    outcome(doc, profile)


@settings(max_examples=100, deadline=None)
@given(enabled=st.sampled_from([None, True]))
def test_unknown_or_enabled_risk_is_never_a_pass_under_strict(enabled):
    facts = facts_from_data(
        {"deployment": {"engine": "x"}, "optimizations": {"paging": {"enabled": enabled}}}
    )
    result = next(r for r in EVALUATORS["pcc-strict"].evaluate(facts).results if r.id == "PCC-S-001")
    assert result.verdict == Verdict.FAIL  # scrub_on_free unknown fails under pcc-strict
