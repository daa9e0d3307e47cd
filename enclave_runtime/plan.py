"""The partition plan: where each operation of a LLaMA decoder runs, and its checker.

A plan is data (a dict / JSON / YAML file), so the security review reads one
table instead of code. The runtime executes exactly what the plan says; the
checker refuses a plan before anything runs if it would let a private tensor
cross to the accelerator unblinded. Placements:

* ``enclave`` — runs in the trusted process.
* ``offload_blinded`` — a linear map with a *public* weight, applied by the
  accelerator to a one-time-pad blinded input over ``F_p`` (Mode P).
* ``offload_clear`` — only for a public weight on public data.
* ``offload_obfuscated`` — INSECURE positive control (ShadowNet/TransLinkGuard
  style permutation + scaling of the merged weight, input in the clear). The
  attack suite breaks it; the checker accepts it only with ``allow_insecure``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pccguard.errors import InputError

Placement = Literal["enclave", "offload_blinded", "offload_clear", "offload_obfuscated"]
PLACEMENTS: tuple[str, ...] = ("enclave", "offload_blinded", "offload_clear", "offload_obfuscated")

#: Linear groups of a decoder layer: fused projections that share one input (and one mask).
LAYER_GROUPS: dict[str, tuple[str, ...]] = {
    "qkv": ("q_proj", "k_proj", "v_proj"),
    "o": ("o_proj",),
    "gate_up": ("gate_proj", "up_proj"),
    "down": ("down_proj",),
}
#: Operations of one decoder layer, in execution order; ``kind`` drives the checker.
LAYER_OPS: dict[str, str] = {
    "input_norm": "nonlinear",
    "qkv.base": "linear_base",
    "qkv.delta": "linear_delta",
    "rope": "nonlinear",
    "attention": "nonlinear",  # QKᵀ, softmax, PV and the KV cache: activation × activation
    "o.base": "linear_base",
    "o.delta": "linear_delta",
    "residual": "nonlinear",
    "post_norm": "nonlinear",
    "gate_up.base": "linear_base",
    "gate_up.delta": "linear_delta",
    "silu_gate": "nonlinear",
    "down.base": "linear_base",
    "down.delta": "linear_delta",
}
#: Operations outside the layers, with the layer slot they occupy in execution order.
PRE_OPS: dict[str, str] = {"embed": "lookup"}
POST_OPS: dict[str, str] = {
    "final_norm": "nonlinear",
    "lm_head.base": "linear_base",
    "lm_head.delta": "linear_delta",
    "sampling": "nonlinear",
}
ALL_OPS: dict[str, str] = {**PRE_OPS, **LAYER_OPS, **POST_OPS}


class PlanError(InputError):
    """A partition plan that is malformed or would leak a private tensor; one line."""


@dataclass(frozen=True)
class PrivacySpec:
    """Which tensors are private. Mode P: public base, private deltas; Mode F: private base."""

    base_private: bool = False
    embed_private: bool = False
    lm_head_private: bool = False
    #: ``(layer, group)`` pairs that carry a private delta (LoRA); ``layer = -1`` for lm_head.
    deltas: frozenset[tuple[int, str]] = frozenset()
    protect_prompts: bool = True

    @classmethod
    def for_model(
        cls,
        *,
        private_base: bool,
        protect_prompts: bool = True,
        deltas: frozenset[tuple[int, str]] = frozenset(),
    ) -> PrivacySpec:
        """A private base means every base tensor is private: embeddings and LM head included."""
        return cls(
            base_private=private_base,
            embed_private=private_base,
            lm_head_private=private_base,
            deltas=deltas,
            protect_prompts=protect_prompts,
        )

    def weight_private(self, op: str, layer: int) -> bool | None:
        """``True``/``False`` for an op's weight; ``None`` when the op has no weight."""
        kind = ALL_OPS[op]
        if op == "embed":
            return self.embed_private
        if kind == "linear_base":
            group = op.split(".")[0]
            return self.lm_head_private if group == "lm_head" else self.base_private
        if kind == "linear_delta":
            group = op.split(".")[0]
            return (layer, group) in self.deltas
        return None


@dataclass(frozen=True)
class PartitionPlan:
    """Placement per op (``default``), per-layer overrides, and the integrity check."""

    name: str
    default: Mapping[str, str]
    layers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    integrity: Literal["freivalds", "none"] = "freivalds"
    insecure: bool = False

    def placement(self, op: str, layer: int = -1) -> str:
        override = self.layers.get(layer, {})
        return override.get(op, self.default[op])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": dict(sorted(self.default.items())),
            "layers": {str(k): dict(sorted(v.items())) for k, v in sorted(self.layers.items())},
            "integrity": self.integrity,
            "insecure": self.insecure,
        }

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """SHA-256 of the canonical JSON: what the attestation measures."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartitionPlan:
        """Parse a plan document; structure errors raise ``PlanError``."""
        if not isinstance(data, Mapping):
            raise PlanError("a plan must be a mapping")
        unknown = set(data) - {"name", "default", "layers", "integrity", "insecure"}
        if unknown:
            raise PlanError(f"unknown plan keys: {sorted(unknown)}")
        default = data.get("default")
        if not isinstance(default, Mapping):
            raise PlanError("plan.default must map every op to a placement")
        layers: dict[int, dict[str, str]] = {}
        for key, value in (data.get("layers") or {}).items():
            try:
                idx = int(key)
            except (TypeError, ValueError) as exc:
                raise PlanError(f"plan.layers key {key!r} is not a layer index") from exc
            if not isinstance(value, Mapping):
                raise PlanError(f"plan.layers.{key} must be a mapping")
            layers[idx] = {str(k): str(v) for k, v in value.items()}
        integrity = data.get("integrity", "freivalds")
        if integrity not in ("freivalds", "none"):
            raise PlanError(f"plan.integrity must be 'freivalds' or 'none', not {integrity!r}")
        return cls(
            name=str(data.get("name", "unnamed")),
            default={str(k): str(v) for k, v in default.items()},
            layers=layers,
            integrity=integrity,
            insecure=bool(data.get("insecure", False)),
        )


def load_plan(path: str | Path) -> PartitionPlan:
    """Read a plan from a JSON or YAML file."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"cannot parse plan: {exc}", where=str(path)) from exc
    return PartitionPlan.from_dict(data)


# --------------------------------------------------------------------------- shipped plans


def _base_table() -> dict[str, str]:
    return {op: "enclave" for op in ALL_OPS}


def default_plan() -> PartitionPlan:
    """Mode P: public base GEMMs (and lm_head) blinded on the accelerator, all else in the enclave."""
    table = _base_table()
    for op, kind in ALL_OPS.items():
        if kind == "linear_base":
            table[op] = "offload_blinded"
    return PartitionPlan(name="mode-p-default", default=table, integrity="freivalds")


def all_enclave_plan() -> PartitionPlan:
    """Everything in the enclave (Mode F1 baseline, and the TEE-only benchmark)."""
    return PartitionPlan(name="all-enclave", default=_base_table(), integrity="none")


def all_clear_plan() -> PartitionPlan:
    """Protection off: public base GEMMs on the accelerator in the clear, no integrity check.

    Valid only for a public base with unprotected prompts (the checker refuses
    it otherwise). It is the baseline the blinded plan is measured against:
    the same processes and transfers, without blinding, unblinding or checks.
    """
    table = _base_table()
    for op, kind in ALL_OPS.items():
        if kind == "linear_base":
            table[op] = "offload_clear"
    return PartitionPlan(name="all-clear", default=table, integrity="none")


def insecure_obfuscation_plan() -> PartitionPlan:
    """INSECURE positive control: merged private weights offloaded under permutation + scaling.

    The attack suite recovers the permutation from a public base; never deploy this.
    """
    table = _base_table()
    for group in LAYER_GROUPS:
        table[f"{group}.base"] = "offload_obfuscated"
        table[f"{group}.delta"] = "offload_obfuscated"
    table["lm_head.base"] = "offload_blinded"
    return PartitionPlan(name="INSECURE-permute-scale", default=table, integrity="none", insecure=True)


SHIPPED_PLANS = {
    "mode-p-default": default_plan,
    "all-enclave": all_enclave_plan,
    "all-clear": all_clear_plan,
    "INSECURE-permute-scale": insecure_obfuscation_plan,
}


# --------------------------------------------------------------------------- checker


@dataclass(frozen=True)
class Finding:
    """One checked op: where it runs, what its weight and input are, and any violation."""

    op: str
    layer: int
    placement: str
    weight: str  # "public" | "private" | "none"
    data: str  # "public" | "private"
    violation: str | None = None


def _walk(n_layers: int) -> Iterator[tuple[str, int]]:
    for op in PRE_OPS:
        yield op, -1
    for layer in range(n_layers):
        for op in LAYER_OPS:
            yield op, layer
    for op in POST_OPS:
        yield op, -1


def _violation(
    op: str,
    kind: str,
    placement: str,
    weight: bool | None,
    data_private: bool,
    plan: PartitionPlan,
    allow_insecure: bool,
) -> str | None:
    if placement == "enclave":
        return None
    if placement == "offload_obfuscated":
        if not (plan.insecure and allow_insecure):
            return "uses offload_obfuscated (permutation/scaling, broken by prior matching); INSECURE"
        return None
    if kind in ("nonlinear", "lookup"):
        return f"is non-linear ({kind}); a one-time pad only commutes with linear maps"
    if placement == "offload_blinded":
        if weight:
            return "would send a private weight to the accelerator unblinded (only inputs are blinded)"
        return None
    # offload_clear
    if weight:
        return "would send a private weight to the accelerator unblinded (offload_clear)"
    if data_private:
        return "would send a private activation to the accelerator unblinded (offload_clear)"
    return None


def check_plan(
    plan: PartitionPlan, privacy: PrivacySpec, n_layers: int, *, allow_insecure: bool = False
) -> list[Finding]:
    """Check ``plan`` for a model of ``n_layers`` layers; raise ``PlanError`` on the first violation.

    Data taint flows in execution order: activations are private when prompts
    are protected or once any private weight has touched them.
    """
    findings = evaluate_plan(plan, privacy, n_layers, allow_insecure=allow_insecure)
    for f in findings:
        if f.violation:
            where = f"layers.{f.layer}.{f.op}" if f.layer >= 0 else f.op
            raise PlanError(
                f"plan {plan.name!r}: op {where} ({f.placement}) {f.violation}; place it in the enclave"
            )
    return findings


def evaluate_plan(
    plan: PartitionPlan, privacy: PrivacySpec, n_layers: int, *, allow_insecure: bool = False
) -> list[Finding]:
    """Every op with its verdict, without raising (what :func:`plan_facts` summarizes)."""
    unknown = (set(plan.default) | {op for o in plan.layers.values() for op in o}) - set(ALL_OPS)
    if unknown:
        raise PlanError(f"plan {plan.name!r}: unknown ops {sorted(unknown)}")
    missing = set(ALL_OPS) - set(plan.default)
    if missing:
        raise PlanError(f"plan {plan.name!r}: no placement for ops {sorted(missing)}")
    bad_layers = [k for k in plan.layers if not 0 <= k < n_layers]
    if bad_layers:
        raise PlanError(f"plan {plan.name!r}: overrides for layers {bad_layers} outside 0..{n_layers - 1}")
    for table in (plan.default, *plan.layers.values()):
        for op, placement in table.items():
            if placement not in PLACEMENTS:
                raise PlanError(f"plan {plan.name!r}: op {op} has unknown placement {placement!r}")
    findings = []
    data_private = privacy.protect_prompts
    for op, layer in _walk(n_layers):
        kind = ALL_OPS[op]
        placement = plan.placement(op, layer)
        weight = privacy.weight_private(op, layer)
        if kind == "linear_delta" and not weight:
            weight_label = "none"  # no delta on this projection: nothing runs
        else:
            weight_label = "none" if weight is None else ("private" if weight else "public")
        violation = None
        if weight_label != "none" or kind in ("nonlinear", "lookup", "linear_base"):
            violation = _violation(op, kind, placement, weight, data_private, plan, allow_insecure)
        if kind == "linear_delta" and weight and placement == "offload_obfuscated":
            base = plan.placement(op.split(".")[0] + ".base", layer)
            if base != "offload_obfuscated":
                violation = violation or "is obfuscated but its base is not (the merged weight is obfuscated)"
        findings.append(
            Finding(op, layer, placement, weight_label, "private" if data_private else "public", violation)
        )
        if weight:
            data_private = True
    return findings


def plan_facts(plan: PartitionPlan, privacy: PrivacySpec, n_layers: int) -> dict[str, Any]:
    """Facts a pccguard rule can read (e.g. deny when ``private_unblinded_offloads > 0``).

    Shaped like the core facts: counts and short identifiers, no tensors.
    """
    findings = evaluate_plan(plan, privacy, n_layers, allow_insecure=False)
    offloaded = [
        f
        for f in findings
        if f.placement != "enclave" and not (ALL_OPS[f.op] == "linear_delta" and f.weight == "none")
    ]
    unblinded = [f for f in findings if f.violation and "unblinded" in f.violation]
    return {
        "plan": plan.name,
        "plan_digest": plan.digest(),
        "scheme": "otp-prime-field",
        "insecure_obfuscation": any(f.placement == "offload_obfuscated" for f in findings),
        "integrity_check": plan.integrity,
        "prompts_protected": privacy.protect_prompts,
        "ops_total": len(findings),
        "ops_offloaded": len(offloaded),
        "private_unblinded_offloads": len(unblinded),
        "private_obfuscated_offloads": sum(
            1 for f in offloaded if f.placement == "offload_obfuscated" and f.weight == "private"
        ),
        "nonlinear_offloads": sum(1 for f in findings if f.violation and "non-linear" in f.violation),
        "violations": sorted({f"{f.op}: {f.violation}" for f in findings if f.violation}),
    }
