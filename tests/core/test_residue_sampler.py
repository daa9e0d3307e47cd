"""The residue sampler over a real block store: zeros pass, a planted non-zero block is found.

The store is a plain byte array standing for an engine's KV pool; the
engine adapters give the sampler their own free lists and device reads.
"""

from __future__ import annotations

import random

import pytest

from pccguard.enforcement.audit import AuditEvent, AuditKind, AuditLog
from pccguard.enforcement.residue import ResidueSampler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Pool:
    """64 blocks of 16 bytes; blocks 0..31 free, 32..63 in use (holding data)."""

    def __init__(self) -> None:
        self.data = bytearray(64 * 16)
        for block in range(32, 64):
            self.data[block * 16 : (block + 1) * 16] = b"\x07" * 16

    def free(self) -> list[int]:
        return list(range(32))

    def dirty(self, ids: list[int]) -> list[int]:
        return [i for i in ids if any(self.data[i * 16 : (i + 1) * 16])]


def _sampler(action: str = "stop_admitting") -> tuple[ResidueSampler, list[AuditEvent], Clock]:
    events: list[AuditEvent] = []
    clock = Clock()
    sampler = ResidueSampler(
        AuditLog("vllm", sinks=[events.append]),
        interval_s=5.0,
        blocks=32,
        action=action,  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(0),
    )
    return sampler, events, clock


def test_due_at_most_once_per_interval() -> None:
    sampler, _, clock = _sampler()
    assert not sampler.due()  # not before the first interval has passed
    clock.now += 5.0
    assert sampler.due() and not sampler.due()
    clock.now += 4.9
    assert not sampler.due()
    clock.now += 0.2
    assert sampler.due()


def test_clean_free_blocks_pass_and_a_planted_block_is_found() -> None:
    pool = Pool()
    sampler, events, clock = _sampler()
    clean = sampler.sample(pool.free, pool.dirty)
    assert clean.checked == 32 and clean.dirty == () and sampler.admitting and events == []
    # Positive control: the in-use blocks do hold data, and the reader sees it.
    assert pool.dirty([40, 41]) == [40, 41]
    pool.data[5 * 16 + 3] = 1  # residue planted in free block 5
    found = sampler.sample(pool.free, pool.dirty)
    assert found.dirty == (5,)
    assert not sampler.admitting
    (event,) = events
    assert event.kind == AuditKind.RESIDUE_FOUND and event.count == 1 and event.unit == "blocks"
    assert event.reason == "admission_stopped"
    assert sampler.counters() == {
        "residue_samples": 2,
        "residue_blocks_checked": 64,
        "residue_blocks_found": 1,
    }
    clock.now += 60.0
    assert not sampler.due()  # admission stopped: no more samples, no more events


def test_audit_only_keeps_admitting() -> None:
    pool = Pool()
    pool.data[0] = 9
    sampler, events, _ = _sampler("audit")
    assert sampler.sample(pool.free, pool.dirty).dirty == (0,)
    assert sampler.admitting and events[0].reason == "audited"


def test_a_reader_that_fails_is_not_a_clean_sample() -> None:
    pool = Pool()
    sampler, events, _ = _sampler()

    def broken(ids: list[int]) -> list[int]:
        raise RuntimeError("device read failed")

    with pytest.raises(RuntimeError):
        sampler.sample(pool.free, broken)
    assert sampler.counters()["residue_samples"] == 0 and events == []


def test_a_reader_that_names_other_blocks_is_refused() -> None:
    pool = Pool()
    sampler, _, _ = _sampler()
    with pytest.raises(ValueError, match="not asked about"):
        sampler.sample(pool.free, lambda ids: [999])


@pytest.mark.parametrize(("interval", "blocks"), [(0.0, 8), (-1.0, 8), (5.0, 0), (5.0, 5000)])
def test_bad_settings_are_refused(interval: float, blocks: int) -> None:
    with pytest.raises(ValueError):
        ResidueSampler(AuditLog("vllm", sinks=[]), interval_s=interval, blocks=blocks)


@pytest.mark.parametrize(
    "mitigations",
    [
        {"residue_sample_interval_seconds": 0},
        {"residue_sample_blocks": 0},
        {"residue_sample_blocks": 5000},
        {"residue_on_found": "ignore"},
    ],
)
def test_bad_residue_settings_are_refused_in_the_plugin_config(mitigations: dict[str, object]) -> None:
    from pydantic import ValidationError

    from pccguard.enforcement.config import PluginConfig

    with pytest.raises(ValidationError):
        PluginConfig.model_validate({"mitigations": mitigations})
    # Positive control: the defaults and an explicit "off" are accepted.
    assert PluginConfig().mitigations.residue_sample_interval_seconds == 5.0
    off = PluginConfig.model_validate({"mitigations": {"residue_sample_interval_seconds": None}})
    assert off.mitigations.residue_sample_interval_seconds is None
