"""NGRAM speculation never proposes one tenant's text to another with the plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_shared_corpus_leaks_without_plugin(scenario: Any, tiny_model: Path) -> None:
    result = scenario("ngram", tiny_model, False, None)
    assert result["b_got_secret"] is True, "positive control: SGLang's corpus proposes A's text to B"


def test_per_tenant_corpus_with_plugin(scenario: Any, tiny_model: Path, plugin_config: Path) -> None:
    result = scenario("ngram", tiny_model, True, plugin_config)
    assert result["b_got_secret"] is False
    assert result["a_got_secret"] is True, "the tenant's own continuation is still proposed"
    assert result["tenants"] == 2
