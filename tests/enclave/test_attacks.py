"""The extraction-attack suite: the default plan resists it, the insecure control does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pccguard.enclave_runtime.attacks import run_suite
from pccguard.enclave_runtime.attacks.lstsq import fit_linear
from pccguard.enclave_runtime.attacks.metrics import rel_to_prior
from pccguard.enclave_runtime.attacks.prior import prior_matching

from .conftest import REPORT


def test_default_plan_resists_every_attack(
    default_campaign: tuple[Path, Any], model_dirs: tuple[Path, Path]
) -> None:
    transcript, prompts = default_campaign
    rows, probe = run_suite(transcript, *model_dirs, prompts)
    attacks = {r.attack for r in rows}
    assert {"prior_matching", "procrustes", "global_scale", "lstsq_pairs"} <= attacks
    assert len({(r.layer, r.group) for r in rows}) == 2 * 4  # every group with a private delta
    worst = min(r.rel_to_prior for r in rows)
    assert worst >= 0.99, worst
    assert all(abs(r.delta_cosine) < 0.1 for r in rows)
    assert probe is not None and probe.mode == "blinded"
    REPORT.append(
        f"default plan: {len(rows)} attacks, min rel_to_prior {worst:.4f}; probe accuracy "
        f"{probe.accuracy:.3f} on {probe.n_test} (chance bound {probe.chance_bound:.3f})"
    )
    assert probe.at_chance, probe


def test_insecure_plan_is_broken(insecure_campaign: tuple[Path, Any], model_dirs: tuple[Path, Path]) -> None:
    transcript, prompts = insecure_campaign
    rows, probe = run_suite(transcript, *model_dirs, prompts)
    matched = [r for r in rows if r.attack == "prior_matching"]
    assert matched and all(r.perm_recovery is not None and r.perm_recovery >= 0.9 for r in matched)
    assert all(r.rel_to_prior < 0.5 for r in matched)  # much closer than the public base
    assert probe is not None and not probe.at_chance  # clear inputs: the probe reads the prompt
    REPORT.append(
        f"insecure plan: permutation recovered {min(r.perm_recovery or 0 for r in matched):.0%} "
        f"(min over groups), rel_to_prior {max(r.rel_to_prior for r in matched):.3f} (max); "
        f"probe accuracy {probe.accuracy:.3f}"
    )


def test_lstsq_recovers_a_leaked_map() -> None:
    rng = np.random.default_rng(0)
    w_pub = rng.normal(size=(32, 16))
    w_true = w_pub + 0.3 * rng.normal(size=(32, 16))
    x = rng.normal(size=(64, 32))
    fit = fit_linear(x, x @ w_true)
    assert fit is not None and rel_to_prior(fit, w_true, w_pub) < 1e-6
    perm = rng.permutation(16)
    w_hat, perm_hat = prior_matching((w_true * 3.0)[:, perm], w_pub)
    assert np.array_equal(perm_hat, perm) and rel_to_prior(w_hat, w_true, w_pub) < 0.5


def test_cli_prints_a_table(default_campaign: tuple[Path, Any], model_dirs: tuple[Path, Path]) -> None:
    transcript, _ = default_campaign
    prompts = transcript.with_name("mode-p-default.prompts.json")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pccguard.enclave_runtime.attacks",
            "--transcript",
            str(transcript),
            "--model",
            str(model_dirs[0]),
            "--adapter",
            str(model_dirs[1]),
            "--prompts",
            str(prompts),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "rel_to_prior" in out.stdout and "linear probe" in out.stdout and "at chance" in out.stdout
