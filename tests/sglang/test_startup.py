"""SGLang's start path: at most two evaluations, the profile read once, every error refuses.

In this process, on real resolved ``ServerArgs`` (the decision patches nothing
in SGLang; the hooks are not registered here). The evaluations are counted on
the real embedded engine the decision builds (``tests.core.evaluations`` wraps
that instance's ``evaluate``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch  # noqa: F401  (before regopy: see pccguard.adapters.sglang.facts)

import pccguard.adapters.sglang.runtime.startup as startup
from pccguard.adapters.sglang.runtime.state import STATE
from pccguard.errors import EnforcementError
from pccguard.policy.profiles import shipped_profiles
from tests.core.evaluations import count_evaluations
from tests.sglang.scenarios._common import server_args

BASELINE = (
    "profile: multi-tenant-baseline\n"
    "tenancy:\n  mode: multi\n  identified_by: header\n  tenant_header: x-pccguard-tenant\n"
    "mitigations:\n  prefix_cache_ttl_seconds: 300\n"
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Write this test's ``PCCGUARD_CONFIG``; the process starts and ends undecided."""
    monkeypatch.setenv("SGLANG_PLUGINS", "none")

    def write(text: str) -> Path:
        path = tmp_path / "pccguard.yaml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("PCCGUARD_CONFIG", str(path))
        return path

    STATE.current = None
    yield write
    STATE.current = None


def _decide(model: Path) -> Any:
    return startup.decide(server_args(str(model)))


def test_an_sglang_start_evaluates_twice(
    tiny_model: Path, config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config(BASELINE)
    seen = count_evaluations(monkeypatch)
    sa = server_args(str(tiny_model))
    enforcement = startup.decide(sa)
    assert enforcement is not None and "scrub_freed_kv" in enforcement.installed
    assert len(seen) == 2
    first, second = (doc["facts"]["runtime"]["mitigations_active"] for doc in seen.inputs)
    assert first == [] and second == sorted(enforcement.installed)
    assert startup.decide(sa) is enforcement and len(seen) == 2  # decided once per process


def test_admin_routes_follow_the_profile_the_decision_was_made_under(
    tiny_model: Path, config: Callable[[str], Path], tmp_path: Path
) -> None:
    """The decision carries the profile's parameters; no second read of the profile can disagree with it."""
    config(BASELINE)
    assert _decide(tiny_model).admin_routes == "require_admin_key"  # the baseline allows authenticated admin
    STATE.current = None
    closed = tmp_path / "closed.yaml"
    text = (
        shipped_profiles()["multi-tenant-baseline"]
        .read_text(encoding="utf-8")
        .replace("allow_authenticated_admin_endpoints: true", "allow_authenticated_admin_endpoints: false")
    )
    assert "allow_authenticated_admin_endpoints: false" in text
    closed.write_text(text.replace("name: multi-tenant-baseline", "name: closed-admin"), encoding="utf-8")
    config(BASELINE.replace("profile: multi-tenant-baseline", f"profile: '{closed}'"))
    assert _decide(tiny_model).admin_routes == "refuse"


# --------------------------------------------------------------------------- fault injection


def test_an_error_in_the_fact_collector_refuses_even_in_fail_open_mode(
    tiny_model: Path, config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config(BASELINE + "fail_mode: open\n")
    assert _decide(tiny_model) is not None  # positive control: the same start is decided
    STATE.current = None

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("collector exploded")

    monkeypatch.setattr(startup, "facts_from_server_args", broken)
    with pytest.raises(
        EnforcementError, match=r"refuses to start sglang \(fail-closed\).*collector exploded"
    ):
        _decide(tiny_model)
    assert STATE.current is None


@pytest.mark.parametrize("content", [None, "not-a-digest: alice\n"], ids=["missing", "malformed"])
def test_an_unreadable_key_file_refuses_the_start(
    tiny_model: Path, config: Callable[[str], Path], tmp_path: Path, content: str | None
) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"{hashlib.sha256(b'k1').hexdigest()}: alice\n", encoding="utf-8")
    tenancy = f"identified_by: api_key\n  api_keys_file: '{keys}'"
    config(BASELINE.replace("identified_by: header", tenancy) + "fail_mode: open\n")
    assert _decide(tiny_model) is not None  # positive control: a good key file starts
    STATE.current = None
    if content is None:
        keys.unlink()
    else:
        keys.write_text(content, encoding="utf-8")
    with pytest.raises(EnforcementError, match=r"refuses to start sglang \(fail-closed\)"):
        _decide(tiny_model)


def test_a_broken_profile_parameter_refuses_the_start(
    tiny_model: Path, config: Callable[[str], Path], tmp_path: Path
) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "name: slip\ndescription: a string where a number goes\nparams:\n  max_prefix_cache_ttl_seconds: '600'\n",
        encoding="utf-8",
    )
    config(BASELINE.replace("profile: multi-tenant-baseline", f"profile: '{profile}'"))
    with pytest.raises(EnforcementError, match=r"fail-closed.*max_prefix_cache_ttl_seconds"):
        _decide(tiny_model)
    assert STATE.current is None
