"""Sampling in the enclave with vLLM's semantics: the logits never leave, only tokens (and asked-for logprobs).

vLLM's sampler runs in the model runner, next to the logits. Here the logits
exist only in the enclave process, so the whole sampler runs there too; the
host sends each request's sampling parameters once
(:class:`~.sampling_wire.Admission`) and the finished request ids with every
step, and the enclave keeps, per request, what the penalties, ``min_tokens``,
bad words and a seeded generator need (:class:`~.sampler_state.SamplerState`).
That state is zeroed the moment the host reports the request finished
(:meth:`~.sampler_state.SamplerRegistry.finish`), like every other piece of
per-request state in the enclave.

Order and semantics follow vLLM 0.33's v1 ``Sampler`` (``vllm/v1/sample/``),
applied to each request as vLLM applies them to a batch of one:

0. a structured-output request's grammar bitmask for this step (computed by
   the engine core's grammar backend from the tokens it already knows, sent
   with the step) sets every token it does not allow to ``-inf``, before the
   sampler, as vLLM's model runner applies it (xgrammar's bit layout);
1. the logprobs source is fixed first: by default (``raw_logprobs``) the
   log-softmax of the model's logits before any processing; ``raw_logits``,
   ``processed_logits`` and ``processed_logprobs`` as in vLLM;
2. ``allowed_token_ids`` (everything else to ``-inf``), bad words (the last
   token of a bad word whose prefix ends the output), ``min_tokens`` (stop
   tokens to ``-inf`` while the output is shorter), ``logit_bias``;
3. repetition penalty over prompt and output tokens, then frequency and
   presence penalties over output tokens (OpenAI's definitions);
4. greedy (temperature below 1e-5): argmax. Otherwise temperature, ``min_p``,
   ``top_k`` / ``top_p``, softmax, and vLLM's exponential race
   (``argmax(p / q)``, ``q ~ Exp(1)``) drawn from the request's own generator
   when it has a seed (reproducible, independent of the batch), else from the
   enclave's entropy-seeded generator;
5. logprobs: the sampled token's, the top-N (or the requested token ids), and
   the sampled token's rank.

This module applies that order to one request's logits (:func:`sample_row`) and to
a step's batch (:func:`sample_step`), built from the batch operations of
:mod:`.logits_ops`. It never imports vLLM: it runs inside the enclave process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pccguard.enclave_runtime.vllm_executor.logits_ops import (
    apply_min_p,
    apply_penalties,
    apply_temperature,
    apply_top_k_top_p,
    gather_logprobs,
    gather_token_logprobs,
    grammar_banned,
    random_sample,
    token_masks,
)
from pccguard.enclave_runtime.vllm_executor.sampler_state import SamplerState
from pccguard.enclave_runtime.vllm_executor.sampling_params import RequestSampling, int64_tensor


@dataclass
class Sampled:
    """One sampled token and, when the request asked, its logprob row ``(ids, logprobs, rank)``."""

    token: int
    logprobs: tuple[torch.Tensor, torch.Tensor, int] | None = None


def sample_row(
    row: torch.Tensor,
    params: RequestSampling,
    state: SamplerState | None,
    entropy: torch.Generator,
    grammar: torch.Tensor | None = None,
) -> Sampled:
    """Process one request's logits in vLLM's order, sample, and gather the logprobs it asked for.

    ``grammar`` is the request's grammar bitmask row for this step, if it has one.
    """
    vocab = row.shape[-1]
    logits = row.to(torch.float32).reshape(1, vocab).clone()
    scratch: list[torch.Tensor] = [logits]
    try:
        if grammar is not None:
            logits[0].masked_fill_(grammar_banned(grammar, vocab), float("-inf"))
        source: torch.Tensor | None = None
        if params.wants_logprobs and params.logprobs_mode == "raw_logprobs":
            source = logits.log_softmax(dim=-1, dtype=torch.float32)
        elif params.wants_logprobs and params.logprobs_mode == "raw_logits":
            source = logits.clone()
        outputs = state.outputs() if state is not None else int64_tensor([])
        generated = state.generated if state is not None else 0
        _constrain(logits, params, outputs, generated)
        if params.penalized:
            prompt = state.prompt if state is not None else int64_tensor([])
            prompt_mask, _ = token_masks([prompt], vocab)
            _, counts = token_masks([outputs], vocab)
            scratch += [prompt_mask, counts]
            apply_penalties(
                logits,
                prompt_mask,
                counts,
                torch.tensor([params.presence_penalty], dtype=torch.float32),
                torch.tensor([params.frequency_penalty], dtype=torch.float32),
                torch.tensor([params.repetition_penalty], dtype=torch.float32),
            )
        if params.greedy:
            token = int(logits.argmax(dim=-1).view(-1)[0])
        else:
            apply_temperature(logits, torch.tensor([params.temperature], dtype=torch.float32))
            if params.min_p > 0:
                apply_min_p(logits, torch.tensor([params.min_p], dtype=torch.float32))
            k = torch.tensor([params.top_k], dtype=torch.int64) if 0 < params.top_k < vocab else None
            p = torch.tensor([params.top_p], dtype=torch.float32) if params.top_p < 1.0 else None
            apply_top_k_top_p(logits, k, p)
            probs = logits.softmax(dim=-1, dtype=torch.float32)
            scratch.append(probs)
            generator = state.generator if state is not None and state.generator is not None else None
            gens = {0: generator} if generator is not None else {}
            token = int(random_sample(probs, gens, entropy)[0])
        if params.wants_logprobs and params.logprobs_mode == "processed_logits":
            source = logits
        elif params.wants_logprobs and params.logprobs_mode == "processed_logprobs":
            source = logits.log_softmax(dim=-1, dtype=torch.float32)
        if source is not None:
            scratch.append(source)
        lp = _logprob_row(source[0], params, token) if source is not None else None
        if state is not None:
            state.append(token)
        return Sampled(token, lp)
    finally:
        for t in scratch:
            t.zero_()


def _constrain(logits: torch.Tensor, params: RequestSampling, outputs: torch.Tensor, generated: int) -> None:
    """Allowed tokens, bad words, ``min_tokens`` and ``logit_bias``, in vLLM's order."""
    row = logits[0]
    if params.allowed_token_ids is not None:
        banned = torch.ones(row.shape[0], dtype=torch.bool)
        banned[list(params.allowed_token_ids)] = False
        row.masked_fill_(banned, float("-inf"))
    if params.bad_words:
        past = [int(t) for t in outputs.tolist()]
        for word in params.bad_words:
            if len(word) > len(past) + 1:
                continue
            prefix = list(word[:-1])
            if not prefix or past[-len(prefix) :] == prefix:
                row[word[-1]] = float("-inf")
    if generated < params.min_tokens and params.stop_token_ids:
        row[list(params.stop_token_ids)] = float("-inf")
    if params.logit_bias:
        ids = torch.tensor([t for t, _ in params.logit_bias], dtype=torch.int64)
        row[ids] += torch.tensor([b for _, b in params.logit_bias], dtype=torch.float32)


def _logprob_row(
    source: torch.Tensor, params: RequestSampling, token: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    if params.logprob_token_ids:
        ids, vals, rank = gather_token_logprobs(source, list(params.logprob_token_ids), token)
    else:
        n = min(int(params.logprobs or 0), source.shape[-1])
        ids, vals, rank = gather_logprobs(source.unsqueeze(0), n, torch.tensor([token], dtype=torch.int64))
    return ids[0].clone(), vals[0].clone(), int(rank[0])


def sample_step(
    logits: torch.Tensor,
    entries: list[tuple[RequestSampling, SamplerState | None]],
    entropy: torch.Generator,
    grammar: dict[int, torch.Tensor] | None = None,
) -> tuple[list[int], dict[str, torch.Tensor], list[int]]:
    """Sample every row; return the tokens, the logprob tensors (may be empty) and the rows they belong to.

    ``grammar`` maps a row to its grammar bitmask (structured-output requests only).
    Logprob rows exist only for the requests that asked; they are padded to one
    width with token 0 and ``-inf`` (vLLM reads only each request's own count).
    """
    tokens: list[int] = []
    rows: list[tuple[int, tuple[torch.Tensor, torch.Tensor, int]]] = []
    masks = grammar or {}
    for i, (row, (params, state)) in enumerate(zip(logits, entries, strict=True)):
        out = sample_row(row, params, state, entropy, masks.get(i))
        tokens.append(out.token)
        if out.logprobs is not None:
            rows.append((i, out.logprobs))
    if not rows:
        return tokens, {}, []
    width = max(ids.numel() for _, (ids, _, _) in rows)
    lp_ids = torch.zeros(len(rows), width, dtype=torch.int64)
    lp_vals = torch.full((len(rows), width), float("-inf"), dtype=torch.float32)
    for r, (_, (ids, vals, _)) in enumerate(rows):
        lp_ids[r, : ids.numel()] = ids
        lp_vals[r, : vals.numel()] = vals
    ranks = torch.tensor([rank for _, (_, _, rank) in rows], dtype=torch.int64)
    return tokens, {"lp_ids": lp_ids, "lp_vals": lp_vals, "lp_ranks": ranks}, [i for i, _ in rows]
