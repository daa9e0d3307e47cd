"""Residue sampling while serving on vLLM's real EngineCore: free KV holding data stops admission.

The plant writes a canary into every free block of every KV tensor after the
engine started, through the same ``collective_rpc`` the sampler reads with,
and reads a few back (the positive control). The sampler runs where vLLM's
loop calls it, ``EngineCore.post_step``. Controls: the same engine under
traffic (finished requests freed, scrubbed, cached prefixes kept and hit)
finds nothing; a zeroer that stops working after the start is caught by the
sample although the start-time self-test passed; ``audit`` reports and keeps
admitting; without the plugin nobody samples.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pccguard.adapters.vllm.runtime import residue
from pccguard.adapters.vllm.runtime import selftest_worker as worker
from pccguard.adapters.vllm.runtime.audit import audit_log
from tests.vllm.support import add, make_engine, request, run_until_idle, salt_for
from tests.vllm.test_isolation import SECRET_PROMPT, _hits

INTERVAL = 0.02


def _config(extra: str = "") -> str:
    return (
        "profile: multi-tenant-baseline\n"
        f"mitigations:\n  residue_sample_interval_seconds: {INTERVAL}\n  residue_sample_blocks: 64\n{extra}"
    )


@contextmanager
def _serving(model: Path, plugin_config: Any, config: str) -> Iterator[Any]:
    """A real EngineCore started under ``config``, shut down afterwards."""
    plugin_config(config)
    engine = make_engine(model)
    try:
        yield engine
    finally:
        engine.shutdown()


@pytest.fixture
def events() -> Iterator[list[Any]]:
    seen: list[Any] = []
    log = audit_log()
    log.sinks.append(seen.append)
    try:
        yield seen
    finally:
        log.sinks.remove(seen.append)


def _free_ids(engine: Any) -> list[int]:
    pool = engine.scheduler.kv_cache_manager.block_pool
    return [b.block_id for b in pool.blocks if b.ref_cnt == 0 and not b.is_null and b.block_hash is None]


def _plant(engine: Any) -> list[int]:
    """Canary into every free block, as a free path that skipped the scrub leaves it; the control read."""
    ids = _free_ids(engine)
    engine.model_executor.collective_rpc(worker.write_canary, args=(ids, secrets.randbits(62)))
    # Positive control: the data is there, and the reader sees it.
    assert residue.holding(engine, ids) == sorted(ids)
    return ids


def _step_after_interval(engine: Any) -> None:
    time.sleep(INTERVAL * 2)
    engine.post_step(model_executed=False)  # what the busy loop and the in-process client call after a step


def _residue_events(events: list[Any]) -> list[Any]:
    return [e for e in events if e.kind.value == "residue_found"]


def test_planted_residue_is_found_and_stops_admission(
    tiny_model: Path, plugin_config: Any, events: list[Any]
) -> None:
    with _serving(tiny_model, plugin_config, _config()) as engine:
        sampler = engine.pccguard_residue
        planted = _plant(engine)
        _step_after_interval(engine)
        assert not sampler.admitting and residue.refuses(engine)
        (event,) = _residue_events(events)
        assert (event.mitigation, event.unit) == ("scrub_freed_kv", "blocks")
        assert event.reason == "admission_stopped"
        assert event.count == len(planted) == sampler.counters()["residue_blocks_found"]
        _step_after_interval(engine)  # stopped: nothing more to decide, nothing more sampled
        assert sampler.counters()["residue_samples"] == 1 and len(_residue_events(events)) == 1


def test_under_traffic_nothing_is_found_and_cached_prefixes_still_hit(
    tiny_model: Path, plugin_config: Any, events: list[Any]
) -> None:
    with _serving(tiny_model, plugin_config, _config()) as engine:
        sampler = engine.pccguard_residue
        salt = salt_for(engine, "tenant-a")
        for i in range(6):  # three full blocks (cached) and a partial one (freed, scrubbed) each
            add(engine, request(f"r{i}", [*SECRET_PROMPT, 400 + i], salt=salt))
            run_until_idle(engine)
            _step_after_interval(engine)
        assert _hits(engine, "again", salt) == len(SECRET_PROMPT)  # the same tenant still hits its prefix
        cached = [b for b in engine.scheduler.kv_cache_manager.block_pool.blocks if b.block_hash is not None]
        assert cached  # they hold data by design and are never sampled
        counts = sampler.counters()
        assert counts["residue_samples"] >= 6 and counts["residue_blocks_checked"] >= 6 * 30
        assert counts["residue_blocks_found"] == 0 and sampler.admitting
        assert _residue_events(events) == []


def _zeroer_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the CPU zeroer does nothing (a fault that appears after the start-time self-test)."""
    monkeypatch.setattr(
        "pccguard.adapters.vllm.runtime.worker.CpuBlockZeroer.__call__", lambda self, block_ids: None
    )


def test_a_zeroer_that_stops_working_while_serving_is_caught(
    tiny_model: Path, plugin_config: Any, events: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The start-time self-test passes with the zeroer working.
    with _serving(tiny_model, plugin_config, _config()) as engine:
        assert "scrub_freed_kv" in engine.scheduler.pccguard_selftests.verified
        _zeroer_stops(monkeypatch)
        add(engine, request("r", list(range(300, 340)), salt=salt_for(engine, "tenant-a")))
        run_until_idle(engine)  # the request's partial block is freed, queued, "zeroed" and left holding data
        _step_after_interval(engine)
        assert not engine.pccguard_residue.admitting
        (event,) = _residue_events(events)
        assert event.count >= 1


def test_audit_only_reports_and_keeps_admitting(
    tiny_model: Path, plugin_config: Any, events: list[Any]
) -> None:
    with _serving(tiny_model, plugin_config, _config("  residue_on_found: audit\n")) as engine:
        _plant(engine)
        _step_after_interval(engine)
        assert engine.pccguard_residue.admitting and not residue.refuses(engine)
        (event,) = _residue_events(events)
        assert event.reason == "audited"
        _step_after_interval(engine)  # audit mode goes on sampling and reporting
        assert len(_residue_events(events)) == 2


def test_sampling_off_or_plugin_off_nobody_samples(
    tiny_model: Path, plugin_config: Any, events: list[Any]
) -> None:
    for text in (_config().replace(f"{INTERVAL}", "null"), "enabled: false\n"):
        with _serving(tiny_model, plugin_config, text) as engine:
            assert getattr(engine, "pccguard_residue", None) is None
            _plant(engine)  # the residue is there
            _step_after_interval(engine)
            assert _residue_events(events) == []  # and nobody looks


def test_blocks_waiting_for_zeroing_are_not_sampled(tiny_model: Path, plugin_config: Any) -> None:
    with _serving(tiny_model, plugin_config, _config()) as engine:
        add(engine, request("r", list(range(300, 340)), salt=salt_for(engine, "tenant-a")))
        while engine.scheduler.has_requests() and not engine.scheduler.pccguard_scrub.pending():
            engine.step()
        queued = [i for i in _free_ids(engine) if engine.scheduler.pccguard_scrub.queued(i)]
        assert queued and residue.holding(engine, queued) == sorted(queued)  # freed, not yet zeroed
        picked = residue.free_candidates(engine, 64, engine.pccguard_residue.rng)
        assert picked and not set(picked) & set(queued)


def test_blocks_a_step_in_flight_may_still_zero_are_not_sampled(tiny_model: Path, plugin_config: Any) -> None:
    """With overlapping steps (vLLM's batch queue) the last two steps' zeroing may not have run yet.

    This CPU engine runs one step at a time, so the batch queue and the scheduler's record of the
    last two drains are set here as a pipelined engine has them; the pool is the real one.
    """
    from collections import deque

    with _serving(tiny_model, plugin_config, _config()) as engine:
        assert engine.scheduler.pccguard_recently_zeroed is None  # one batch at a time: nothing is kept
        free = _free_ids(engine)
        handed = frozenset(free[:8])
        engine.scheduler.pccguard_recently_zeroed = deque([frozenset(), handed], maxlen=2)
        rng = engine.pccguard_residue.rng
        assert handed <= set(residue.free_candidates(engine, 64, rng))  # control: no batch in flight
        engine.batch_queue = deque([None])  # a step in flight
        picked = residue.free_candidates(engine, 64, rng)
        engine.batch_queue = None
        assert picked and not set(picked) & handed
