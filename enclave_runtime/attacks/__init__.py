"""Extraction-attack suite: from a transcript of what the accelerator saw, try to recover private weights.

Run as ``python -m pccguard.enclave_runtime.attacks --transcript T.npz --model BASE --adapter LORA``.
"""

from __future__ import annotations

from pccguard.enclave_runtime.attacks.suite import AttackRow, ProbeResult, format_table, run_suite

__all__ = ["AttackRow", "ProbeResult", "format_table", "run_suite"]
