"""Locations of data shipped inside the package (the rulebook)."""

from __future__ import annotations

from pathlib import Path


def shipped_rules_dir() -> Path:
    """The installed ``pccguard.rules`` package folder (``rules/`` in the source tree)."""
    import pccguard.rules

    return Path(pccguard.rules.__file__).resolve().parent
