"""The audit: primed prompts, hit probes and fresh controls in random order, per identity pair.

One trial: the victim sends a fresh random prompt P (priming the cache when it
is shared), then the attacker sends either P again (a hit probe) or a fresh
prompt of the same length (a control). Fresh prompts in every trial keep the
attacker's own earlier probes from creating hits. Sections:

- ``positive_control``: attacker = victim. A cache that works must show hits
  here; if it does not, nothing else can be concluded (verdict inconclusive).
- ``cross_tenant``: a different identity. Hits here are cross-tenant sharing.
- ``salt_copy``: the attacker sends the ``cache_salt`` the victim used, the
  way a client-chosen salt could be copied; a server-derived salt ignores it.

The ``cached_tokens`` reported in ``usage.prompt_tokens_details`` is an
oracle when the server exposes it: any cached token on an attacker's hit
probe is sharing.

A run that stops early (the server died, a request timed out, Ctrl-C) still
returns a report of what was measured, marked incomplete with the reason:
an interrupted audit is evidence too, and must never look like a finished one.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pccguard.probe.client import Client, Identity, ProbeError
from pccguard.probe.params import (
    MAX_PROMPT_WORDS,
    MAX_TIMEOUT_S,
    MAX_TRIALS,
    MIN_PROMPT_WORDS,
    MIN_TRIALS,
)
from pccguard.probe.stats import ks_2samp, threshold_classifier

#: Why a run stopped when the user pressed Ctrl-C.
INTERRUPTED = "interrupted (Ctrl-C) before the audit finished"
#: Prompt vocabulary: common words, so any tokenizer splits them into a few tokens each.
_WORD_TEXT = """
apple river stone cloud maple silver orange window garden candle harbor meadow pepper
lantern copper violet thunder pebble forest marble ribbon saddle falcon tunnel velvet
anchor blossom canyon dragon ember feather glacier hollow island jungle kettle ladder
mirror needle oyster pillow quartz rocket shadow timber umbrella valley walnut yonder
"""
WORDS = tuple(_WORD_TEXT.split())
#: The section where the victim probes itself: hits there are the goal, not a finding.
POSITIVE_CONTROL = "positive_control"


@dataclass
class Trial:
    kind: str  # "hit" or "control"
    ttft_s: float
    cached_tokens: int | None


@dataclass
class Section:
    name: str
    victim: str
    attacker: str
    trials: list[Trial] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    def samples(self, kind: str) -> list[float]:
        return [t.ttft_s for t in self.trials if t.kind == kind]

    def decide(self, alpha: float) -> None:
        """Decide whether hit probes stand out from controls in this section.

        Timing evidence is two tests, KS and the classifier's binomial test,
        each at ``alpha / 2`` (Bonferroni), so that ``alpha`` bounds the chance
        that timing noise alone reports sharing. A cached token on a hit probe
        is the server's own word and needs no test.
        """
        hits, controls = self.samples("hit"), self.samples("control")
        cached = [t.cached_tokens for t in self.trials if t.kind == "hit" and t.cached_tokens is not None]
        out: dict[str, Any] = {
            "n_hit": len(hits),
            "n_control": len(controls),
            "cached_tokens_max": max(cached) if cached else None,
        }
        if len(hits) >= 2 and len(controls) >= 2:
            ks = ks_2samp(hits, controls)
            clf = threshold_classifier(hits, controls)
            out |= {
                "ks_statistic": ks.statistic,
                "ks_p_value": ks.p_value,
                "ks_method": ks.method,
                "classifier_accuracy": clf.accuracy,
                "classifier_ci95": [clf.ci_low, clf.ci_high],
                "classifier_p_value": clf.p_value,
                "median_hit_ms": 1000 * sorted(hits)[len(hits) // 2],
                "median_control_ms": 1000 * sorted(controls)[len(controls) // 2],
            }
            timing = ks.p_value < alpha / 2 or clf.p_value < alpha / 2
            shared = timing or bool(cached and max(cached) > 0)
            out["sharing_detected"] = shared
            out["chance_in_ci"] = clf.contains_chance()
        else:
            out["sharing_detected"] = None
        self.result = out


@dataclass
class AuditConfig:
    base_url: str
    model: str
    victim: Identity
    attacker: Identity
    trials: int = 60
    prompt_words: int = 120
    warmup: int = 4
    timeout_s: float = 30.0
    alpha: float = 0.01
    victim_salt: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        # The command line checks these with friendlier messages; this keeps library callers bounded too.
        if not MIN_TRIALS <= self.trials <= MAX_TRIALS:
            raise ValueError(f"trials must be between {MIN_TRIALS} and {MAX_TRIALS}")
        if not MIN_PROMPT_WORDS <= self.prompt_words <= MAX_PROMPT_WORDS:
            raise ValueError(f"prompt_words must be between {MIN_PROMPT_WORDS} and {MAX_PROMPT_WORDS}")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be greater than 0 and at most {MAX_TIMEOUT_S:g}")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be strictly between 0 and 1")


@dataclass
class AuditReport:
    config: dict[str, Any]
    sections: list[Section]
    complete: bool
    error: str | None
    requests: int
    seconds: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "complete": self.complete,
            "error": self.error,
            "requests": self.requests,
            "seconds": self.seconds,
            "verdict": self.verdict,
            "sections": [asdict(s) for s in self.sections],
        }


def _prompt(rng: random.SystemRandom, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def verdict(sections: dict[str, Section], complete: bool) -> str:
    control = sections.get(POSITIVE_CONTROL)
    cross = sections.get("cross_tenant")
    if control is None or control.result.get("sharing_detected") is not True:
        return "inconclusive: the positive control did not detect same-identity hits"
    if cross is None or cross.result.get("sharing_detected") is None:
        return "incomplete: the cross-tenant section did not finish"
    if cross.result["sharing_detected"]:
        return "FAIL: cross-tenant prefix-cache sharing detected"
    salt = sections.get("salt_copy")
    if salt is not None and salt.result.get("sharing_detected"):
        return "FAIL: a copied cache salt gives cross-tenant hits"
    suffix = "" if complete else " (partial run)"
    return "PASS: no cross-tenant sharing detected" + suffix


def run_audit(cfg: AuditConfig, on_request: Callable[[], None] | None = None) -> AuditReport:
    """Run every section; on a server error stop and return what was measured, marked incomplete."""
    client = Client(cfg.base_url, cfg.model, cfg.timeout_s)
    prompts = random.SystemRandom()
    order = random.Random(cfg.seed if cfg.seed is not None else secrets.randbits(32))
    victim_extra = {"cache_salt": cfg.victim_salt} if cfg.victim_salt else None
    plan = [
        Section(POSITIVE_CONTROL, cfg.victim.name, cfg.victim.name),
        Section("cross_tenant", cfg.victim.name, cfg.attacker.name),
        Section("salt_copy", cfg.victim.name, cfg.attacker.name),
    ]
    who = {cfg.victim.name: cfg.victim, cfg.attacker.name: cfg.attacker}
    started = time.perf_counter()
    error: str | None = None
    done: list[Section] = []

    def send(identity: Identity, prompt: str, extra: dict[str, Any] | None) -> Any:
        obs = client.complete(identity, prompt, extra)
        if on_request is not None:
            on_request()
        return obs

    try:
        for _ in range(cfg.warmup):
            send(cfg.victim, _prompt(prompts, cfg.prompt_words), victim_extra)
        for section in plan:
            done.append(section)
            attacker = who[section.attacker]
            copy = {"cache_salt": cfg.victim_salt or cfg.victim.tenant or cfg.victim.name}
            attacker_extra = copy if section.name == "salt_copy" else None
            if section.name == POSITIVE_CONTROL:
                attacker_extra = victim_extra
            kinds = ["hit"] * cfg.trials + ["control"] * cfg.trials
            order.shuffle(kinds)
            for kind in kinds:
                secret = _prompt(prompts, cfg.prompt_words)
                send(cfg.victim, secret, victim_extra if section.name != "salt_copy" else copy)
                probe = secret if kind == "hit" else _prompt(prompts, cfg.prompt_words)
                obs = send(attacker, probe, attacker_extra)
                section.trials.append(Trial(kind, obs.ttft_s, obs.cached_tokens))
    except ProbeError as exc:
        error = str(exc)
    except KeyboardInterrupt:
        error = INTERRUPTED
    for section in done:
        section.decide(cfg.alpha)
    complete = error is None and len(done) == len(plan)
    by_name = {s.name: s for s in done}
    config = {
        "base_url": cfg.base_url,
        "model": cfg.model,
        "victim": cfg.victim.name,
        "attacker": cfg.attacker.name,
        "identities": {cfg.victim.name: cfg.victim.describe(), cfg.attacker.name: cfg.attacker.describe()},
        "trials": cfg.trials,
        "prompt_words": cfg.prompt_words,
        "alpha": cfg.alpha,
        "timeout_s": cfg.timeout_s,
    }
    if complete:
        decision = verdict(by_name, complete)
    else:
        decision = f"incomplete: {error}"
        if "cross_tenant" in by_name:
            decision += f" (the partial data says: {verdict(by_name, True)})"
    return AuditReport(
        config, done, complete, error, client.requests, time.perf_counter() - started, decision
    )


def request_budget(cfg: AuditConfig) -> int:
    """Requests the audit sends at most (the progress bar's total)."""
    return cfg.warmup + 3 * 2 * 2 * cfg.trials
