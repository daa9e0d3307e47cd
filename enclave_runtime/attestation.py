"""Measurement and signed attestation reports of the (software) enclave, and their verifier.

The measurement is one SHA-256 over: the digest of the enclave's code, the
plan's canonical JSON digest, the root digest of every weight and adapter
tensor, the field parameters, and the privacy options it was started with
(which tensors count as private, whether the insecure control is allowed). At start the enclave generates an Ed25519 key
pair (``cryptography``); the private key never leaves the enclave process. A
report binds the measurement, the public key and a verifier-chosen nonce under
that key's signature.

What a software backend cannot prove: that the key belongs to an enclave at all.
A real TEE closes that gap by putting ``sha256(report body)`` into the quote's
64-byte report data (SGX ``REPORTDATA``, TDX ``REPORTDATA``, SEV-SNP
``REPORT_DATA``), signed by the platform's attestation key; the verifier then
checks the quote chain and the code identity (MRENCLAVE / MRTD+RTMRs /
MEASUREMENT) in addition to everything checked here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pccguard.enclave_runtime import field as F
from pccguard.enclave_runtime.errors import AttestationError

#: Modules that run inside the enclave process (the attack suite and host helpers do not).
ENCLAVE_MODULES = (
    "__init__.py",
    "attestation.py",
    "channel.py",
    "codec.py",
    "decoder.py",
    "enclave.py",
    "errors.py",
    "field.py",
    "linear.py",
    "model.py",
    "plan.py",
)


def code_digest() -> str:
    """SHA-256 over (name, sha256(source)) of every enclave module, in a fixed order."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ENCLAVE_MODULES:
        h.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return h.hexdigest()


def field_params() -> str:
    return f"p={F.P};limb_bits={F.LIMB_BITS};limbs={F.N_LIMBS};wq=balanced;aq=per-token"


def measurement(components: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()


def policy_digest(
    *, private_base: bool = False, protect_prompts: bool = True, allow_insecure: bool = False
) -> str:
    """Digest of the privacy options the enclave was started with (the host passes them; so measure them)."""
    policy = {
        "private_base": private_base,
        "protect_prompts": protect_prompts,
        "allow_insecure": allow_insecure,
    }
    return hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest()


def components_for(plan_digest: str, weights_root: str, policy: str | None = None) -> dict[str, str]:
    return {
        "code": code_digest(),
        "plan": plan_digest,
        "weights": weights_root,
        "field": field_params(),
        "policy": policy or policy_digest(),
    }


@dataclass(frozen=True)
class AttestationReport:
    """What the enclave returns for ``attest(nonce)``."""

    backend: str
    components: dict[str, str]
    measurement: str
    public_key: str  # raw Ed25519 public key, hex
    nonce: str
    signature: str  # base64 Ed25519 signature over body()

    def body(self) -> bytes:
        data = asdict(self)
        data.pop("signature")
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def report_data(self) -> bytes:
        """The 64 bytes a real TEE quote would carry: sha512 of the report body."""
        return hashlib.sha512(self.body()).digest()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AttestationReport:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


class EnclaveIdentity:
    """The enclave's signing key (generated at start, in memory only) and its measurement."""

    def __init__(self, backend: str, components: dict[str, str]) -> None:
        self._key = Ed25519PrivateKey.generate()
        self.backend = backend
        self.components = dict(components)
        self.measurement = measurement(self.components)

    def public_key_hex(self) -> str:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def report(self, nonce: str) -> AttestationReport:
        unsigned = AttestationReport(
            self.backend, self.components, self.measurement, self.public_key_hex(), nonce, ""
        )
        sig = base64.b64encode(self._key.sign(unsigned.body())).decode()
        return AttestationReport(**{**asdict(unsigned), "signature": sig})


def verify_report(
    report: AttestationReport, *, expected_measurement: str, nonce: str, pinned_key: str | None = None
) -> None:
    """Raise ``AttestationError`` unless the report is signed, fresh and measures what we expect."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(report.public_key))
        key.verify(base64.b64decode(report.signature, validate=True), report.body())
    except (ValueError, InvalidSignature) as exc:
        raise AttestationError("attestation signature does not verify") from exc
    if pinned_key is not None and not hmac.compare_digest(report.public_key, pinned_key):
        raise AttestationError("attestation key differs from the pinned enclave key")
    if not hmac.compare_digest(report.nonce, nonce):
        raise AttestationError("attestation nonce mismatch (replayed or stale report)")
    if measurement(report.components) != report.measurement:
        raise AttestationError("attestation components do not hash to the reported measurement")
    if not hmac.compare_digest(report.measurement, expected_measurement):
        diff = sorted(
            k
            for k, v in report.components.items()
            if _expected_components.get(expected_measurement, {}).get(k, v) != v
        )
        detail = f" (differs in: {', '.join(diff)})" if diff else ""
        raise AttestationError(f"enclave measurement is not the expected one{detail}")


_expected_components: dict[str, dict[str, str]] = {}


def expected_measurement(plan_digest: str, weights_root: str, policy: str | None = None) -> str:
    """What a verifier who knows the code, plan, weights and options expects the enclave to report."""
    comps = components_for(plan_digest, weights_root, policy)
    m = measurement(comps)
    _expected_components[m] = comps
    return m
