"""pccguard's metrics route: the counters every process answers, summed, validated, and written out.

The route itself is served by the tenant boundary in front of the real apps:
``tests/vllm/test_guarantee_metrics_route.py`` (vLLM's app, a reader that fails),
``tests/e2e/test_serve_scan.py`` and ``tests/sglang/test_serve_routes.py``
(the real servers, parsed with ``prometheus_client``'s parser).
"""

from __future__ import annotations

import pytest

from pccguard.enforcement.guarantee_metrics import FAMILY, KINDS, CounterError, exposition, merged


def test_counters_of_every_process_are_summed_and_only_guarantee_kinds_are_served() -> None:
    frontend = {"selftest_passed/allowlist_logs": 1, "log_withheld/allowlist_logs": 40}
    core = {
        "residue_found/scrub_freed_kv": 8,
        "selftest_passed/scrub_freed_kv": 4,
        "kv_scrubbed/scrub_freed_kv": 900,
    }
    other = {"residue_found/scrub_freed_kv": 2}
    totals = merged([frontend, core, other])
    assert totals == {
        ("selftest_passed", "allowlist_logs"): 1,
        ("residue_found", "scrub_freed_kv"): 10,
        ("selftest_passed", "scrub_freed_kv"): 4,
    }  # traffic counts (withheld records, scrubbed blocks) are not served


def test_the_exposition_names_every_served_kind_even_at_zero() -> None:
    text = exposition(merged([{"residue_found/scrub_freed_kv": 3}])).decode()
    lines = text.splitlines()
    assert lines[0].startswith(f"# HELP {FAMILY}_total ") and lines[1] == f"# TYPE {FAMILY}_total counter"
    assert f'{FAMILY}_total{{kind="residue_found",mitigation="scrub_freed_kv"}} 3' in lines
    for kind in KINDS - {"residue_found"}:
        assert f'{FAMILY}_total{{kind="{kind}",mitigation="-"}} 0' in lines
    assert text.endswith("\n")


@pytest.mark.parametrize(
    "part",
    [
        {"residue_found": 1},  # no mitigation part
        {'residue_found/scrub"} 9': 1},  # would break out of the label
        {"residue_found/scrub_freed_kv": -1},
        {"residue_found/scrub_freed_kv": True},
        {"residue_found/scrub_freed_kv": "8"},
        ["residue_found/scrub_freed_kv"],
    ],
)
def test_anything_but_counters_fails_the_scrape(part: object) -> None:
    with pytest.raises(CounterError):
        merged([part])  # type: ignore[list-item]
