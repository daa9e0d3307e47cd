"""Attestation: a signed measurement of code, plan and weights, and a verifier that rejects tampering."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest

from pccguard.enclave_runtime.attestation import (
    AttestationReport,
    expected_measurement,
    policy_digest,
    verify_report,
)
from pccguard.enclave_runtime.errors import AttestationError
from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.model import load_weights, weights_root
from pccguard.enclave_runtime.plan import all_enclave_plan, default_plan


def _expected(model_dirs: tuple[Path, Path], plan_digest: str) -> str:
    return expected_measurement(plan_digest, weights_root(load_weights(*model_dirs).digests()))


def test_verifier_accepts_the_real_enclave(hybrid: HybridExecutor, model_dirs: tuple[Path, Path]) -> None:
    report = hybrid.verify(*model_dirs)
    assert report.measurement == hybrid.ready["measurement"]
    assert set(report.components) == {"code", "plan", "weights", "field", "policy"}
    assert len(report.report_data()) == 64


def test_verifier_rejects_tampering(hybrid: HybridExecutor, model_dirs: tuple[Path, Path]) -> None:
    expected = _expected(model_dirs, default_plan().digest())
    report = hybrid.attest("n-1")
    verify_report(report, expected_measurement=expected, nonce="n-1")
    with pytest.raises(AttestationError, match="nonce"):
        verify_report(report, expected_measurement=expected, nonce="n-2")
    forged_plan = dataclasses.replace(
        report, components={**report.components, "plan": all_enclave_plan().digest()}
    )
    with pytest.raises(AttestationError, match="signature"):
        verify_report(forged_plan, expected_measurement=expected, nonce="n-1")
    sig = bytearray(base64.b64decode(report.signature))
    sig[0] ^= 1
    with pytest.raises(AttestationError, match="signature"):
        verify_report(
            dataclasses.replace(report, signature=base64.b64encode(bytes(sig)).decode()),
            expected_measurement=expected,
            nonce="n-1",
        )
    # A well-signed report of the wrong enclave (other plan) does not match the owner's expectation.
    other = _expected(model_dirs, all_enclave_plan().digest())
    with pytest.raises(AttestationError, match="plan"):
        verify_report(report, expected_measurement=other, nonce="n-1")
    # Re-signing with another key is caught when the enclave key is pinned.
    with pytest.raises(AttestationError, match="pinned"):
        verify_report(report, expected_measurement=expected, nonce="n-1", pinned_key="00" * 32)
    # Same code, plan and weights, but started with the insecure control allowed: not what the owner expects.
    lax = expected_measurement(
        default_plan().digest(),
        weights_root(load_weights(*model_dirs).digests()),
        policy_digest(allow_insecure=True),
    )
    with pytest.raises(AttestationError, match="policy"):
        verify_report(report, expected_measurement=lax, nonce="n-1")
    assert AttestationReport.from_json(report.to_json()) == report


def test_other_weights_do_not_verify(hybrid: HybridExecutor, model_dirs: tuple[Path, Path]) -> None:
    base_only = expected_measurement(
        default_plan().digest(), weights_root(load_weights(model_dirs[0]).digests())
    )
    report = hybrid.attest("n")
    with pytest.raises(AttestationError, match="weights"):
        verify_report(report, expected_measurement=base_only, nonce="n")
