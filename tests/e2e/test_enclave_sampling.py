"""Sampling in the enclave: vLLM's semantics, checked against vLLM's own operations and through its engine.

The first half compares the enclave's sampler operations with vLLM's (pure
functions, random logits, CPU): penalties, top-k/top-p, min-p, bad words and
the seeded exponential race must agree exactly or to float tolerance. The
second half drives vLLM's real ``EngineCore`` with the enclave executor:
top-k 1 and a tiny top-p equal greedy, seeds reproduce, sampled tokens stay in
the top-k set, logprobs equal the log-softmax of the reference logits,
penalties and masks reach the enclave, a structured-output request follows
its grammar exactly as an independent xgrammar-constrained reference does
(and a request beside it in the same step is untouched), unsupported
parameters are refused without stopping the engine, and the per-request
sampler state the enclave keeps is gone once vLLM reports the request
finished.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from vllm.exceptions import VLLMValidationError
from vllm.sampling_params import SamplingParams, StructuredOutputsParams
from vllm.v1.core.sched.output import GrammarOutput
from vllm.v1.sample.logits_processor.builtin import MinPLogitsProcessor
from vllm.v1.sample.ops.bad_words import apply_bad_words
from vllm.v1.sample.ops.penalties import apply_all_penalties
from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_only, apply_top_k_top_p_pytorch
from vllm.v1.sample.ops.topk_topp_sampler import random_sample as vllm_random_sample

from pccguard.adapters.vllm.runtime.enclave_requests import install_enclave_request_checks, refusal
from pccguard.enclave_runtime.codec import Message
from pccguard.enclave_runtime.errors import EnclaveRuntimeError
from pccguard.enclave_runtime.executor import HybridExecutor
from pccguard.enclave_runtime.plan import all_enclave_plan
from pccguard.enclave_runtime.vllm_executor.executor import EnclaveWorker, PreparedStep
from pccguard.enclave_runtime.vllm_executor.logits_ops import (
    apply_min_p,
    apply_penalties,
    apply_top_k_top_p,
    grammar_banned,
    random_sample,
    token_masks,
)
from pccguard.enclave_runtime.vllm_executor.sampler import sample_row
from pccguard.enclave_runtime.vllm_executor.sampler_state import SamplerRegistry
from pccguard.enclave_runtime.vllm_executor.sampling_params import RequestSampling
from pccguard.enclave_runtime.vllm_executor.sampling_wire import Admission, grammar_from_wire, grammar_to_wire
from tests.cpu_vllm import core_request, tenant_token
from tests.e2e.support import make_engine

VOCAB = 97


def _logits(rows: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, VOCAB, generator=gen) * 3


def _tokens(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(VOCAB) for _ in range(n)]


# --------------------------------------------------------------------------- against vLLM's operations


def test_penalties_equal_vllm() -> None:
    rng = random.Random(0)
    logits = _logits(4, 0)
    prompts = [_tokens(rng, n) for n in (5, 9, 0, 3)]
    outputs = [_tokens(rng, n) for n in (7, 0, 4, 12)]
    presence = torch.tensor([0.5, -1.0, 2.0, 0.0])
    frequency = torch.tensor([0.3, 0.0, -0.7, 1.5])
    repetition = torch.tensor([1.3, 0.8, 1.0, 2.0])
    width = max(len(p) for p in prompts)
    padded = torch.tensor([p + [VOCAB] * (width - len(p)) for p in prompts])
    want = apply_all_penalties(logits.clone(), padded, presence, frequency, repetition, outputs)
    prompt_mask, _ = token_masks([torch.tensor(p, dtype=torch.int64) for p in prompts], VOCAB)
    _, counts = token_masks([torch.tensor(o, dtype=torch.int64) for o in outputs], VOCAB)
    got = apply_penalties(logits.clone(), prompt_mask, counts, presence, frequency, repetition)
    assert not torch.equal(want, logits), "positive control: the penalties change the logits"
    assert torch.equal(got, want)


@pytest.mark.parametrize("mode", ["k", "p", "kp"])
def test_top_k_top_p_equal_vllm(mode: str) -> None:
    logits = _logits(6, 1)
    k = torch.tensor([1, 5, VOCAB, 20, 2, 50]) if "k" in mode else None
    p = torch.tensor([0.9, 0.5, 0.99, 1e-6, 1.0, 0.3]) if "p" in mode else None
    want = apply_top_k_top_p_pytorch(logits.clone(), k, p, allow_cpu_sync=True)
    got = apply_top_k_top_p(logits.clone(), k, p)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got, want)
    if mode == "k":
        assert k is not None
        assert torch.equal(got, apply_top_k_only(logits.clone(), k.clone()))
        assert (~torch.isinf(got)).sum(-1).tolist() == k.tolist()


def test_min_p_equals_vllm() -> None:
    logits = _logits(3, 2)
    min_p = torch.tensor([0.05, 0.3, 0.9])
    config = SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=4))
    proc = MinPLogitsProcessor(config, torch.device("cpu"), False)  # type: ignore[arg-type]
    proc.min_p_count, proc.min_p = 3, min_p.unsqueeze(1)
    want = proc.apply(logits.clone())
    got = apply_min_p(logits.clone(), min_p)
    assert torch.isinf(want).any(), "positive control: min_p masks something"
    assert torch.equal(got, want)


def test_seeded_race_equals_vllm() -> None:
    probs = torch.softmax(_logits(3, 3), dim=-1)
    gens = {i: torch.Generator().manual_seed(100 + i) for i in range(3)}
    want = vllm_random_sample(probs.clone(), gens)
    gens = {i: torch.Generator().manual_seed(100 + i) for i in range(3)}
    got = random_sample(probs.clone(), gens, torch.Generator().manual_seed(0))
    assert torch.equal(got, want)


def test_constraints_equal_vllm_semantics() -> None:
    """Allowed ids, bad words (vLLM's own op), min_tokens and logit_bias on one row, in vLLM's order."""
    row = _logits(1, 4)[0]
    top = int(row.argmax())
    past = [3, 8, 5]
    bad = ((8, 5, top), (9, 11), (top,))
    want = row.clone().unsqueeze(0)
    apply_bad_words(want, {0: [list(w) for w in bad]}, [past])
    assert torch.isinf(want[0, top]) and not torch.isinf(want[0, 11])
    params = RequestSampling(bad_words=bad)
    got = _process(row, params, outputs=past)
    assert got == int(want[0].argmax())
    # allowed ids win over everything else; a large bias decides among them; stop tokens wait for min_tokens
    params = RequestSampling(allowed_token_ids=(4, 6, 7), logit_bias=((6, 50.0),))
    assert _process(row, params) == 6
    params = RequestSampling(min_tokens=2, stop_token_ids=(top,))
    assert _process(row, params, outputs=[1]) != top
    assert _process(row, params, outputs=[1, 2]) == top


def _process(row: torch.Tensor, params: RequestSampling, outputs: list[int] | None = None) -> int:
    registry = SamplerRegistry(VOCAB)
    registry.admit([Admission("k", params, [], outputs or [])])
    state = registry.get("k")
    return sample_row(row.clone(), params, state, registry.entropy).token


def test_sampler_semantics_on_one_row() -> None:
    row = _logits(1, 5)[0]
    raw = torch.log_softmax(row, dim=-1)
    top3 = set(torch.topk(row, 3).indices.tolist())
    entropy = torch.Generator().manual_seed(1)
    # top_k=1 and a tiny top_p are greedy whatever the temperature
    for params in (RequestSampling(temperature=1.7, top_k=1), RequestSampling(temperature=1.7, top_p=1e-6)):
        assert sample_row(row.clone(), params, None, entropy).token == int(row.argmax())
    # sampled tokens stay in the top-k set; logprobs are the raw ones (vLLM's default mode) with the rank
    params = RequestSampling(temperature=2.0, top_k=3, logprobs=2)
    draws = [sample_row(row.clone(), params, None, entropy) for _ in range(60)]
    assert {d.token for d in draws} <= top3 and len({d.token for d in draws}) > 1
    for d in draws:
        assert d.logprobs is not None
        ids, vals, rank = d.logprobs
        assert ids.tolist()[1:] == torch.topk(raw, 2).indices.tolist()
        assert torch.allclose(vals, raw[ids])
        assert rank == int((raw >= raw[d.token]).sum())
    # processed logprobs see the top-k mask
    params = RequestSampling(temperature=2.0, top_k=3, logprobs=4, logprobs_mode="processed_logprobs")
    out = sample_row(row.clone(), params, None, entropy)
    assert out.logprobs is not None and torch.isinf(out.logprobs[1][-1])


def test_seeded_state_is_reproducible_and_seeds_differ() -> None:
    row = _logits(1, 6)[0]

    def run(seed: int) -> list[int]:
        registry = SamplerRegistry(VOCAB)
        registry.admit([Admission("r", RequestSampling(temperature=1.5, seed=seed), [], [])])
        state = registry.get("r")
        return [sample_row(row.clone(), state.params, state, registry.entropy).token for _ in range(12)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_admission_wire_round_trip_and_hostile_values() -> None:
    params = RequestSampling(
        temperature=0.7,
        top_p=0.9,
        top_k=5,
        min_p=0.1,
        presence_penalty=0.2,
        frequency_penalty=-0.3,
        repetition_penalty=1.1,
        seed=2**40,
        min_tokens=2,
        logprobs=3,
        logprob_token_ids=(4, 5),
        stop_token_ids=(1,),
        allowed_token_ids=(1, 4, 5, 9),
        logit_bias=((4, 1.5), (9, -2.0)),
        bad_words=((3, 4), (8,)),
    )
    meta, tensors = Admission("req-1", params, [5, 6], [7]).to_wire()
    back = Admission.from_wire(meta, tensors, VOCAB)
    assert back == Admission("req-1", params, [5, 6], [7])
    hostile: list[dict[str, Any]] = [
        {"temperature": float("nan")},
        {"top_p": 0.0},
        {"top_k": 1.5},
        {"seed": 2**70},
        {"logprobs": VOCAB + 1},
        {"logprobs_mode": "everything"},
    ]
    for change in hostile:
        with pytest.raises(ValueError):
            Admission.from_wire({**meta, "params": {**meta["params"], **change}}, tensors, VOCAB)
    with pytest.raises(ValueError):
        Admission.from_wire(meta, {**tensors, "allowed": torch.tensor([VOCAB])}, VOCAB)


def _random_bitmask(rows: int, words: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(-(2**31), 2**31, size=(rows, words), dtype=np.int32))


def test_grammar_bitmask_equals_xgrammar() -> None:
    """The enclave's bitmask rule is xgrammar's, the kernel vLLM's model runner applies."""
    import xgrammar as xgr

    logits = _logits(5, seed=31)
    words = -(-VOCAB // 32)
    for width in (words, 2):  # full width, and narrower than the vocabulary (the tail is left alone)
        bitmask = _random_bitmask(5, width, seed=width)
        bitmask[3] = -1  # every token allowed
        bitmask[4] = 0  # none
        expected = logits.clone()
        with warnings.catch_warnings():  # xgrammar warns that a narrow bitmask leaves the tail unmasked
            warnings.simplefilter("ignore", UserWarning)
            xgr.apply_token_bitmask_inplace(expected, bitmask)
        for i in range(5):
            got = logits[i].clone().masked_fill_(grammar_banned(bitmask[i], VOCAB), float("-inf"))
            assert torch.equal(got, expected[i]), (width, i)
    assert not grammar_banned(torch.full((words,), -1, dtype=torch.int32), VOCAB).any()
    assert grammar_banned(torch.zeros(words, dtype=torch.int32), VOCAB).all()


def test_grammar_mask_comes_before_the_sampler() -> None:
    """Greedy and seeded sampling stay in the allowed set; raw logprobs see the masked logits (vLLM's order)."""
    entropy = torch.Generator().manual_seed(0)
    row = _logits(1, seed=32)[0]
    free = int(row.argmax())
    mask = _random_bitmask(1, -(-VOCAB // 32), seed=33)[0]
    word = (int(mask[free // 32]) & 0xFFFFFFFF) & ~(1 << (free % 32))  # forbid the unconstrained choice
    mask[free // 32] = word - (1 << 32) if word >= 1 << 31 else word
    banned = grammar_banned(mask, VOCAB)
    allowed = set((~banned).nonzero().view(-1).tolist())
    assert banned[free] and len(allowed) > 3
    masked = row.masked_fill(banned, float("-inf"))
    params = RequestSampling(temperature=0.0, logprobs=3)
    assert sample_row(row, params, None, entropy).token == free  # the control: no mask, no constraint
    got = sample_row(row, params, None, entropy, mask)
    assert got.token == int(masked.argmax()) and got.token in allowed
    assert got.logprobs is not None
    ids, vals, rank = got.logprobs
    assert set(ids.tolist()) <= allowed and rank == 1
    assert torch.allclose(vals, masked.log_softmax(-1)[ids])
    seeded = RequestSampling(temperature=1.5)
    assert all(sample_row(row, seeded, None, entropy, mask).token in allowed for _ in range(50))


def test_grammar_wire_round_trip_and_hostile_values() -> None:
    words = -(-VOCAB // 32)
    masks = {2: _random_bitmask(1, words, seed=1)[0], 0: _random_bitmask(1, words, seed=2)[0]}
    meta, tensors = grammar_to_wire(masks)
    back = grammar_from_wire(meta, tensors, 3, VOCAB)
    assert sorted(back) == [0, 2] and all(torch.equal(back[k], masks[k]) for k in masks)
    assert grammar_from_wire({}, {}, 3, VOCAB) == {}
    good = tensors["grammar"]
    hostile: list[tuple[dict[str, Any], dict[str, torch.Tensor], int]] = [
        ({}, {"grammar": good}, 3),  # a bitmask without rows
        ({"grammar_rows": [0, 2]}, {}, 3),  # rows without a bitmask
        ({"grammar_rows": [0, 2]}, {"grammar": good.to(torch.int64)}, 3),
        ({"grammar_rows": [0, 2]}, {"grammar": good[:, :-1]}, 3),  # narrower than the vocabulary
        ({"grammar_rows": [0]}, {"grammar": good}, 3),
        ({"grammar_rows": [0, 3]}, {"grammar": good}, 3),  # not a sampled row
        ({"grammar_rows": [2, 2]}, {"grammar": good}, 3),
        ({"grammar_rows": [0, 2]}, {"grammar": good}, 2),
        ({"grammar_rows": "0,2"}, {"grammar": good}, 3),
    ]
    for bad_meta, bad_tensors, sampled in hostile:
        with pytest.raises(ValueError):
            grammar_from_wire(bad_meta, bad_tensors, sampled, VOCAB)


def test_grammar_rows_go_to_their_requests_and_mismatches_stop_the_step() -> None:
    """vLLM's ``GrammarOutput`` rows land on the right sampling requests; a missing or stray row is an error."""
    words = -(-VOCAB // 32)

    def item(sample: bool) -> dict[str, Any]:
        return {"n": 1, "start": 0, "blocks": [0], "sample": sample}

    # "b" is in a prefill chunk (no sample); "c" and "d" sample, and only "d" is structured.
    step = PreparedStep(req_ids=["b", "c", "d"], zero=[], finished=[])
    step.reqs = [item(False), item(True), item(True)]
    step.structured = [1]
    bitmask = _random_bitmask(1, words, seed=5).numpy()
    rows = EnclaveWorker._grammar_rows(step, GrammarOutput(["d"], bitmask))
    assert list(rows) == [1] and torch.equal(rows[1], torch.from_numpy(bitmask[0]))
    mismatched = [
        None,  # the structured request would sample unconstrained
        GrammarOutput(["c"], bitmask),  # a row for an unconstrained request instead
        GrammarOutput(["b"], bitmask),  # a row for a request that does not sample
        GrammarOutput(["d", "c"], bitmask),  # rows that do not divide among their requests
    ]
    for output in mismatched:
        with pytest.raises(RuntimeError):
            EnclaveWorker._grammar_rows(step, output)
    step.structured = []
    assert EnclaveWorker._grammar_rows(step, None) == {}


def test_refusal_names_what_the_enclave_cannot_do() -> None:
    config = SimpleNamespace(model_config=SimpleNamespace(logits_processors=None, return_sampling_mask=False))
    assert (
        refusal(SamplingParams(temperature=0.5, top_p=0.9, logprobs=2, logit_bias={3: 1.0}), config) is None
    )
    # Structured outputs are served: the grammar bitmask reaches the enclave with the step.
    assert refusal(SamplingParams(structured_outputs=StructuredOutputsParams(regex="a+")), config) is None
    cases = {"prompt_logprobs": SamplingParams(prompt_logprobs=1)}
    for name, params in cases.items():
        problem = refusal(params, config)
        assert problem is not None and problem[0] == name
    custom = SimpleNamespace(
        model_config=SimpleNamespace(
            logits_processors=["vllm.v1.sample.logits_processor.builtin:MinPLogitsProcessor"],
            return_sampling_mask=False,
        )
    )
    problem = refusal(SamplingParams(), custom)
    assert problem is not None and problem[0] == "logits_processors"


# --------------------------------------------------------------------------- through vLLM's engine

MAX_NEW = 5


@pytest.fixture(scope="module")
def engine(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    mp = pytest.MonkeyPatch()
    config = tmp_path_factory.mktemp("pccguard") / "pccguard.yaml"
    config.write_text(
        "profile: multi-tenant-baseline\nmitigations: {hybrid_executor_plan: all-enclave}\n", encoding="utf-8"
    )
    mp.setenv("PCCGUARD_CONFIG", str(config))
    mp.setenv("PCCGUARD_ENCLAVE_DEBUG", "1")
    core = make_engine(tiny_llama, skip_tokenizer_init=False)  # a tokenizer: the grammar backend needs one
    try:
        assert core.model_executor.worker.enclave.plan.name == all_enclave_plan().name
        yield core
    finally:
        core.shutdown()
        mp.undo()


@pytest.fixture(scope="module")
def vocab(tiny_llama: Path) -> int:
    return int(json.loads((tiny_llama / "config.json").read_text())["vocab_size"])


@pytest.fixture(scope="module")
def prompts(vocab: int) -> list[list[int]]:
    rng = random.Random(21)
    return [[rng.randrange(3, vocab) for _ in range(n)] for n in (6, 11, 19)]


@pytest.fixture(scope="module")
def reference(tiny_llama: Path, prompts: list[list[int]]) -> list[tuple[list[int], torch.Tensor]]:
    """Greedy tokens and the logits that chose them, from the enclave runtime's own executor."""
    with HybridExecutor.start(tiny_llama, plan=all_enclave_plan(), device="cpu", timeout_s=120) as ex:
        out = [ex.generate(p, MAX_NEW, return_logits=True) for p in prompts]
    return [(r.tokens, r.logits.reshape(MAX_NEW, -1).float()) for r in out if r.logits is not None]


def sampled_request(req_id: str, tokens: list[int], *, max_tokens: int = MAX_NEW, **params: Any) -> Any:
    """``core_request`` with sampling parameters (vLLM's defaults otherwise: temperature 1)."""
    return core_request(
        req_id,
        tokens,
        max_tokens=max_tokens,
        salt=tenant_token("e2e"),
        sampling={"temperature": 1.0, **params},
    )


def run(engine: Any, reqs: list[Any], max_steps: int = 200) -> dict[str, list[tuple[int, Any]]]:
    """Step until idle; per request id, each new token with its logprob row ``(ids, logprobs, rank)`` or None."""
    out: dict[str, list[tuple[int, Any]]] = {r.request_id: [] for r in reqs}
    for r in reqs:
        engine.add_request(*engine.preprocess_add_request(r))
    steps = 0
    while engine.scheduler.has_requests() and steps < max_steps:
        outputs, _ = engine.step()
        for batch in outputs.values():
            for o in batch.outputs:
                key = next(k for k in out if o.request_id.startswith(k))
                lp = o.new_logprobs
                for j, token in enumerate(o.new_token_ids):
                    row = (
                        None
                        if lp is None
                        else (lp.logprob_token_ids[j], lp.logprobs[j], lp.sampled_token_ranks[j])
                    )
                    out[key].append((int(token), row))
        steps += 1
    assert not engine.scheduler.has_requests(), "engine did not finish within the step budget"
    return out


def tokens_of(result: dict[str, list[tuple[int, Any]]], key: str) -> list[int]:
    return [t for t, _ in result[key]]


def test_top_k_1_and_tiny_top_p_equal_greedy(engine: Any, prompts: list[list[int]], reference: Any) -> None:
    reqs = [sampled_request(f"k{i}", p, temperature=1.3, top_k=1) for i, p in enumerate(prompts)]
    reqs += [sampled_request(f"p{i}", p, temperature=1.3, top_p=1e-6, seed=i) for i, p in enumerate(prompts)]
    got = run(engine, reqs)
    for i, (greedy, _) in enumerate(reference):
        assert tokens_of(got, f"k{i}") == greedy
        assert tokens_of(got, f"p{i}") == greedy


def test_seeds_reproduce_and_differ(engine: Any, prompts: list[list[int]]) -> None:
    prompt = prompts[1]
    first = run(
        engine, [sampled_request(f"s{seed}", prompt, temperature=2.0, seed=seed) for seed in range(4)]
    )
    again = run(engine, [sampled_request("s1", prompt, temperature=2.0, seed=1)])
    assert tokens_of(again, "s1") == tokens_of(first, "s1")
    assert len({tuple(tokens_of(first, f"s{seed}")) for seed in range(4)}) > 1


def test_sampled_tokens_stay_in_the_top_k_set(engine: Any, prompts: list[list[int]]) -> None:
    got = run(
        engine,
        [sampled_request(f"t{i}", p, temperature=2.0, top_k=3, logprobs=3) for i, p in enumerate(prompts)],
    )
    for i in range(len(prompts)):
        for token, row in got[f"t{i}"]:
            assert row is not None
            ids, _, rank = row
            assert token in ids[1:4].tolist() and 1 <= rank <= 3


def test_greedy_logprobs_equal_reference_log_softmax(
    engine: Any, prompts: list[list[int]], reference: Any
) -> None:
    """One batch mixes 2, 4 and no logprobs: each request gets its own (rows are as wide as the widest)."""
    wanted = {0: 2, 1: 4, 2: None}
    got = run(
        engine,
        [sampled_request(f"l{i}", p, temperature=0.0, logprobs=wanted[i]) for i, p in enumerate(prompts)],
    )
    for i, (greedy, logits) in enumerate(reference):
        assert tokens_of(got, f"l{i}") == greedy
        n = wanted[i]
        if n is None:
            assert all(row is None for _, row in got[f"l{i}"])
            continue
        want = torch.log_softmax(logits, dim=-1)
        for step, (token, row) in enumerate(got[f"l{i}"]):
            assert row is not None
            ids, vals, rank = row
            assert ids[0] == token and rank == 1
            assert ids[1 : n + 1].tolist() == torch.topk(want[step], n).indices.tolist()
            np.testing.assert_allclose(vals[: n + 1], want[step][ids[: n + 1].tolist()].numpy(), atol=1e-4)


def test_penalties_reach_the_enclave(engine: Any, prompts: list[list[int]], reference: Any) -> None:
    """Second token under presence/frequency penalties equals vLLM's penalties applied to the reference logits."""
    checked = 0
    for i, (greedy, logits) in enumerate(reference):
        kwargs = {"temperature": 0.0, "presence_penalty": -2.0, "frequency_penalty": -2.0}
        penalized = apply_all_penalties(
            logits[1:2].clone(),
            torch.tensor([[len(logits[0])]]),
            torch.tensor([-2.0]),
            torch.tensor([-2.0]),
            torch.tensor([1.0]),
            [[greedy[0]]],
        )
        want = int(penalized.argmax())
        got = run(engine, [sampled_request(f"pen{i}", prompts[i], max_tokens=2, **kwargs)])
        assert tokens_of(got, f"pen{i}") == [greedy[0], want]
        checked += want != greedy[1]
    assert checked, "positive control: the penalty changed at least one second token"


def test_masks_and_min_tokens_reach_the_enclave(
    engine: Any, prompts: list[list[int]], reference: Any
) -> None:
    greedy, logits = reference[0]
    allowed = torch.topk(logits[0], 5).indices.tolist()[2:]  # the greedy token is not allowed
    bias_token = int(torch.topk(logits[0], 40).indices[-1])
    got = run(
        engine,
        [
            sampled_request("allowed", prompts[0], max_tokens=1, temperature=0.0, allowed_token_ids=allowed),
            sampled_request(
                "bias", prompts[0], max_tokens=3, temperature=0.0, logit_bias={bias_token: 100.0}
            ),
            sampled_request(
                "min", prompts[0], max_tokens=2, temperature=0.0, min_tokens=2, stop_token_ids=[greedy[0]]
            ),
        ],
    )
    assert tokens_of(got, "allowed") == [allowed[0]]
    assert tokens_of(got, "bias") == [bias_token] * 3
    assert tokens_of(got, "min")[0] == int(torch.topk(logits[0], 2).indices[1])


#: Short, bounded, and unlike anything the random tiny model says unconstrained.
REGEX = r"(yes|no)-[0-9]{2}"


def _grammar_reference(model: Path, vocab: int, prompt: list[int], max_new: int) -> list[int]:
    """Greedy tokens under :data:`REGEX`, built without vLLM: xgrammar's matcher over the enclave runtime's logits."""
    import xgrammar as xgr
    from transformers import AutoTokenizer

    info = xgr.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(str(model)), vocab_size=vocab)
    matcher = xgr.GrammarMatcher(xgr.GrammarCompiler(info).compile_regex(REGEX))
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    out: list[int] = []
    with HybridExecutor.start(model, plan=all_enclave_plan(), device="cpu", timeout_s=120) as ex:
        while len(out) < max_new and not matcher.is_terminated():
            result = ex.generate(prompt + out, 1, return_logits=True)
            assert result.logits is not None
            row = result.logits.reshape(1, -1)[:, :vocab].float().clone()
            matcher.fill_next_token_bitmask(bitmask)
            xgr.apply_token_bitmask_inplace(row, bitmask)
            token = int(row.argmax())
            assert matcher.accept_token(token)
            out.append(token)
    return out


def test_structured_output_follows_the_grammar_like_the_reference(
    engine: Any, tiny_llama: Path, vocab: int, prompts: list[list[int]], reference: Any
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    grammar = StructuredOutputsParams(regex=REGEX)
    constrained = sampled_request(
        "so", prompts[1], max_tokens=12, temperature=0.0, ignore_eos=False, structured_outputs=grammar
    )
    # What the frontend sets before a request reaches the engine core: the grammar backend, and EOS.
    grammar._backend = "xgrammar"
    constrained.sampling_params.update_from_generation_config({}, eos_token_id=tokenizer.eos_token_id)
    # A plain greedy request in the same steps: the bitmask must reach only its own row.
    got = run(engine, [constrained, sampled_request("plain", prompts[0], temperature=0.0)])
    tokens = tokens_of(got, "so")
    expected = _grammar_reference(tiny_llama, vocab, prompts[1], 12)
    assert tokens == expected
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    assert re.fullmatch(REGEX, text), text
    assert tokens[-1] == tokenizer.eos_token_id  # the grammar ended the request
    assert tokens_of(got, "plain") == reference[0][0]
    # The control: the same prompt unconstrained says something else entirely.
    assert not re.fullmatch(REGEX, tokenizer.decode(reference[1][0], skip_special_tokens=True))
    assert engine.model_executor.worker.pending is None


def test_unsupported_parameters_are_refused_and_the_engine_keeps_serving(
    engine: Any, prompts: list[list[int]], reference: Any
) -> None:
    install_enclave_request_checks()
    refused = [sampled_request("plp", prompts[0], prompt_logprobs=1)]
    for req in refused:
        with pytest.raises(VLLMValidationError, match="enclave executor"):
            engine.preprocess_add_request(req)
    assert not engine.scheduler.has_requests()
    got = run(engine, [sampled_request("after", prompts[0], temperature=0.0)])
    assert tokens_of(got, "after") == reference[0][0]


def _inspect(engine: Any) -> dict[str, Any]:
    enclave = engine.model_executor.worker.enclave
    return dict(enclave.call(Message("sampling_inspect"), "state").meta)


def test_enclave_sampler_state_is_wiped_when_requests_finish(engine: Any, prompts: list[list[int]]) -> None:
    worker = engine.model_executor.worker
    seen: list[int] = []
    original = worker.execute_model

    def spy(so: Any) -> Any:
        out = original(so)
        seen.append(int(worker.enclave.kv_stats()["sampling_states"]))
        return out

    worker.execute_model = spy
    try:
        reqs = [
            sampled_request(f"w{i}", p, temperature=1.0, seed=i, repetition_penalty=1.3)
            for i, p in enumerate(prompts)
        ]
        run(engine, reqs)
    finally:
        worker.execute_model = original
    assert max(seen) == len(prompts), "positive control: the enclave held every running request's state"
    state = _inspect(engine)
    assert state["states"] == 0 and state["keys"] == []
    assert state["last_wiped_all_zero"]
    assert worker.enclave.kv_stats()["sampling_states"] == 0


def test_hostile_admissions_are_refused_and_the_enclave_survives(engine: Any) -> None:
    """The enclave validates what the host sends (no KV is touched: the step has no requests)."""
    enclave = engine.model_executor.worker.enclave
    bad = Admission("x", RequestSampling(allowed_token_ids=(10**6,)))
    with pytest.raises(EnclaveRuntimeError, match="bad_request"):
        enclave.step([], [], admit=[bad])
    enclave.step([], [], admit=[Admission("y", RequestSampling(repetition_penalty=1.2), [5, 6], [7])])
    assert "y" in _inspect(engine)["keys"]
    with pytest.raises(EnclaveRuntimeError, match="bad_request"):
        enclave.step([{"n": 1, "start": 0, "blocks": [0], "sample": True, "key": "nobody"}], [5])
    enclave.step([], [], finished=["y"])
    assert _inspect(engine)["keys"] == []
