"""HiCache L3 storage: SGLang's file backend writes plaintext KV; pccguard's backend seals it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def outcome(scenario: Any, tiny_model: Path) -> dict[str, Any]:
    return scenario("hicache", tiny_model, False, None)  # type: ignore[no-any-return]


def test_file_backend_writes_plaintext(outcome: dict[str, Any]) -> None:
    # Positive control: the canary page is readable on disk.
    assert outcome["file"]["stored"] and outcome["file"]["plaintext_on_disk"]


def test_encrypting_backend_through_dynamic_factory(outcome: dict[str, Any]) -> None:
    enc = outcome["pccguard"]
    assert enc["class"] == "EncryptedHiCacheStorage"
    assert enc["stored"] and enc["files"] == 1
    assert enc["plaintext_on_disk"] is False
    assert enc["roundtrip"] is True
    assert enc["tamper_rejected"] is True
    assert enc["truncated_rejected"] is True
    assert enc["integrity_failures_audited"] == 2  # each page that did not open is a counted miss
