"""Run every attack on a transcript and score it against the private weights (evaluation only).

Inputs: the transcript (the attacker's view), the public base model (the
attacker's prior) and, for scoring, the private adapter. Groups the plan kept in
the enclave leave nothing in the transcript: the attacker's best estimate there
is its prior, scored the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pccguard.enclave_runtime.attacks import metrics as M
from pccguard.enclave_runtime.attacks.lstsq import fit_linear, rescale_to_prior
from pccguard.enclave_runtime.attacks.prior import (
    global_scale,
    prior_matching,
    prior_matching_both,
    prior_matching_rows,
)
from pccguard.enclave_runtime.attacks.probe import chance_bound, ridge_probe
from pccguard.enclave_runtime.attacks.procrustes import procrustes
from pccguard.enclave_runtime.attacks.view import AttackerView
from pccguard.enclave_runtime.model import LlamaWeights, load_weights
from pccguard.enclave_runtime.recorder import Transcript

Key = tuple[int, str]


@dataclass
class AttackRow:
    """One attack on one group."""

    layer: int
    group: str
    mode: str
    attack: str
    rel_to_prior: float
    cosine: float
    delta_cosine: float
    perm_recovery: float | None  # None where the accelerator holds no private weight to un-permute

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class ProbeResult:
    accuracy: float
    n_test: int
    chance_bound: float
    mode: str

    @property
    def at_chance(self) -> bool:
        return self.accuracy <= self.chance_bound


def _truth(weights: LlamaWeights, key: Key) -> tuple[np.ndarray, np.ndarray] | None:
    layer, group = key
    delta = weights.group_delta(layer, group)
    if delta is None:
        return None
    w_pub = weights.group_weight(layer, group).double().numpy()
    return w_pub, w_pub + delta.double().numpy()


def _score(
    key: Key,
    mode: str,
    attack: str,
    w_hat: np.ndarray,
    w_true: np.ndarray,
    w_pub: np.ndarray,
    perm: float | None,
) -> AttackRow:
    return AttackRow(
        key[0],
        key[1],
        mode,
        attack,
        M.rel_to_prior(w_hat, w_true, w_pub),
        M.cosine(w_hat, w_true),
        M.delta_cosine(w_hat, w_true, w_pub),
        perm,
    )


def attack_weights(view: AttackerView, weights: LlamaWeights, *, max_cols: int = 4096) -> list[AttackRow]:
    """Prior matching (columns, rows, both), global scale, Procrustes and least squares, per private group."""
    rows: list[AttackRow] = []
    keys = [(i, g) for i in range(weights.spec.n_layers) for g in ("qkv", "o", "gate_up", "down")]
    keys.append((-1, "lm_head"))
    for key in keys:
        truth = _truth(weights, key)
        if truth is None:
            continue
        w_pub, w_true = truth
        g = view.groups.get(key)
        if g is None:  # kept in the enclave: nothing crossed
            rows.append(_score(key, "enclave", "prior_only", w_pub, w_true, w_pub, None))
            continue
        w_seen = g.weight
        private_stored = g.mode == "obfuscated"
        perm_true = M.true_column_perm(w_seen, w_true) if private_stored else None
        if w_seen.shape[1] <= max_cols:
            w_hat, perm_hat = prior_matching(w_seen, w_pub)
            rate = M.perm_rate(perm_hat, perm_true) if perm_true is not None else None
            rows.append(_score(key, g.mode, "prior_matching", w_hat, w_true, w_pub, rate))
            rows.append(
                _score(key, g.mode, "prior_rows", prior_matching_rows(w_seen, w_pub)[0], w_true, w_pub, None)
            )
            rows.append(
                _score(
                    key, g.mode, "prior_rows_cols", prior_matching_both(w_seen, w_pub), w_true, w_pub, None
                )
            )
            rows.append(_score(key, g.mode, "procrustes", procrustes(w_seen, w_pub), w_true, w_pub, None))
        rows.append(_score(key, g.mode, "global_scale", global_scale(w_seen, w_pub), w_true, w_pub, None))
        x, y = g.stacked()
        fit = fit_linear(x, y)
        if fit is not None:
            est = rescale_to_prior(fit, w_pub)
            if w_seen.shape[1] <= max_cols and private_stored:
                est, _ = prior_matching(fit, w_pub)
            rows.append(_score(key, g.mode, "lstsq_pairs", est, w_true, w_pub, None))
    return rows


def probe(view: AttackerView, prompts: list[dict[str, Any]]) -> ProbeResult | None:
    """Linear probe on layer-0 inputs at position 0; labels are the attacker's chosen classes."""
    g = view.groups.get((0, "qkv"))
    if g is None or not prompts:
        return None
    calls = [int(p["max_new"]) for p in prompts]  # one prefill + (max_new − 1) decode calls
    feats = view.prefill_rows((0, "qkv"), calls)
    labels = np.array([int(p["label"]) for p in prompts[: len(feats)]], dtype=np.float64)
    acc, n_test = ridge_probe(feats, labels)
    return ProbeResult(acc, n_test, chance_bound(n_test), g.mode)


def run_suite(
    transcript: str | Path | Transcript,
    model_dir: str | Path,
    adapter_dir: str | Path,
    prompts: str | Path | list[dict[str, Any]] | None = None,
) -> tuple[list[AttackRow], ProbeResult | None]:
    view = AttackerView.from_transcript(transcript)
    weights = load_weights(model_dir, adapter_dir)
    rows = attack_weights(view, weights)
    chosen = prompts
    if isinstance(prompts, str | Path):
        chosen = json.loads(Path(prompts).read_text(encoding="utf-8"))
    result = probe(view, chosen) if isinstance(chosen, list) else None
    return rows, result


def format_table(rows: list[AttackRow], result: ProbeResult | None) -> str:
    head = f"{'layer':>5} {'group':<8} {'mode':<10} {'attack':<15} {'rel_to_prior':>12} {'cos':>7} {'dcos':>7} {'perm':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        perm = "n/a" if r.perm_recovery is None else f"{r.perm_recovery:.2f}"
        lines.append(
            f"{r.layer:>5} {r.group:<8} {r.mode:<10} {r.attack:<15} {r.rel_to_prior:>12.4f} "
            f"{r.cosine:>7.3f} {r.delta_cosine:>7.3f} {perm:>6}"
        )
    if rows:
        worst = min(rows, key=lambda r: r.rel_to_prior)
        lines.append(
            f"best attack: {worst.attack} on layer {worst.layer} {worst.group}: "
            f"rel_to_prior {worst.rel_to_prior:.4f}"
        )
    if result is not None:
        verdict = "at chance" if result.at_chance else "ABOVE CHANCE"
        lines.append(
            f"linear probe ({result.mode} layer-0 inputs): accuracy {result.accuracy:.3f} on "
            f"{result.n_test} held-out requests; chance bound {result.chance_bound:.3f} -> {verdict}"
        )
    return "\n".join(lines)
