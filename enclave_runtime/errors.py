"""Errors of the enclave runtime; all are ``PccguardError`` so callers get one line, never a pass."""

from __future__ import annotations

from pccguard.errors import EnforcementError, InputError, PccguardError


class EnclaveRuntimeError(PccguardError):
    """The hybrid executor could not complete a request; no partial output is returned."""


class AcceleratorLost(EnclaveRuntimeError):
    """The accelerator process died, closed the channel or did not answer in time."""


class EnclaveLost(EnclaveRuntimeError):
    """The enclave process died or did not answer in time."""


class IntegrityError(EnclaveRuntimeError):
    """The accelerator returned a wrong product (Freivalds check failed) or a malformed reply."""


class AttestationError(EnforcementError):
    """An attestation report that does not verify: bad signature, measurement or nonce."""


class ModelFormatError(InputError):
    """A model or adapter directory that the runtime cannot load faithfully."""
