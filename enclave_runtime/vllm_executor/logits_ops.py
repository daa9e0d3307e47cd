"""Batch operations on logits in vLLM's tensor shapes: the pieces the enclave sampler is built from.

Each function is the one of vLLM 0.33's v1 ``Sampler`` (``vllm/v1/sample/``) of the
same name, on ``[B, V]`` logits, so that tests can compare them with vLLM's own;
:mod:`.sampler` applies them to one request at a time. No vLLM import: this runs
inside the enclave process.
"""

from __future__ import annotations

import torch


def grammar_banned(words: torch.Tensor, vocab: int) -> torch.Tensor:
    """``[V]`` bool: the tokens a grammar bitmask row forbids (xgrammar's layout and vocabulary rule).

    Token ``t`` is allowed when bit ``t % 32`` of word ``t // 32`` is set.
    Like ``xgrammar.apply_token_bitmask_inplace``, tokens past
    ``min(vocab, 32 * words)`` are left alone.
    """
    covered = min(vocab, 32 * words.numel())
    bits = (words.to(torch.int64).reshape(-1, 1) >> torch.arange(32, dtype=torch.int64)) & 1
    banned = torch.zeros(vocab, dtype=torch.bool)
    banned[:covered] = bits.reshape(-1)[:covered] == 0
    return banned


def token_masks(token_ids: list[torch.Tensor], vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: which tokens occur (``[B, V]`` bool) and how often (``[B, V]`` int64)."""
    counts = torch.zeros(len(token_ids), vocab, dtype=torch.int64)
    for row, ids in enumerate(token_ids):
        if ids.numel():
            counts[row].scatter_add_(0, ids.to(torch.int64), torch.ones_like(ids, dtype=torch.int64))
    return counts > 0, counts


def apply_penalties(
    logits: torch.Tensor,
    prompt_mask: torch.Tensor,
    output_counts: torch.Tensor,
    presence: torch.Tensor,
    frequency: torch.Tensor,
    repetition: torch.Tensor,
) -> torch.Tensor:
    """vLLM's ``apply_penalties`` in place: repetition (prompt or output), then frequency, then presence."""
    output_mask = output_counts > 0
    penalties = torch.where(prompt_mask | output_mask, repetition.unsqueeze(1).expand_as(logits), 1.0)
    scaling = torch.where(logits > 0, 1.0 / penalties, penalties)
    logits *= scaling
    logits -= frequency.unsqueeze(dim=1) * output_counts
    logits -= presence.unsqueeze(dim=1) * output_mask
    return logits


def apply_temperature(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    return logits.div_(temperature.unsqueeze(dim=1))


def apply_min_p(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """vLLM's ``MinPLogitsProcessor``: drop tokens less likely than ``min_p`` times the likeliest."""
    probs = torch.nn.functional.softmax(logits, dim=-1)
    threshold = torch.amax(probs, dim=-1, keepdim=True).mul_(min_p.unsqueeze(1))
    return logits.masked_fill_(probs < threshold, -float("inf"))


def apply_top_k_top_p(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
    """vLLM's PyTorch top-k / top-p (``apply_top_k_top_p_pytorch`` as the CPU runs it), in place.

    Top-k keeps every token tied with the k-th largest logit; top-p keeps the
    smallest set of the likeliest tokens whose probability reaches ``p`` (at
    least one token).
    """
    if p is None:
        if k is None:
            return logits
        no_top_k = k == logits.shape[1]
        k = k.masked_fill(no_top_k, 1)
        index = (k - 1).unsqueeze(1).long()
        threshold = logits.topk(int(k.max()), dim=1).values.gather(1, index)
        threshold.masked_fill_(no_top_k.unsqueeze(1), -float("inf"))
        return logits.masked_fill_(logits < threshold, -float("inf"))
    logits_sort, logits_idx = logits.sort(dim=-1, descending=False)
    if k is not None:
        kth = logits_sort.gather(1, (logits_sort.size(1) - k.to(torch.long)).unsqueeze(dim=1))
        logits_sort.masked_fill_(logits_sort < kth, -float("inf"))
    probs_sum = torch.cumsum(logits_sort.softmax(dim=-1), dim=-1)
    top_p_mask = probs_sum <= 1 - p.unsqueeze(dim=1)
    top_p_mask[:, -1] = False
    logits_sort.masked_fill_(top_p_mask, -float("inf"))
    return logits.scatter_(dim=-1, index=logits_idx, src=logits_sort)


def random_sample(
    probs: torch.Tensor, generators: dict[int, torch.Generator], fallback: torch.Generator
) -> torch.Tensor:
    """vLLM's ``random_sample``: the exponential race ``argmax(p / q)``, seeded rows from their own generator."""
    q = torch.empty_like(probs)
    if len(generators) != probs.shape[0]:
        q.exponential_(generator=fallback)
    for i, generator in generators.items():
        q[i].exponential_(generator=generator)
    return probs.div_(q).argmax(dim=-1).view(-1)


def gather_logprobs(
    logprobs: torch.Tensor, num_logprobs: int, token_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """vLLM's ``Sampler.gather_logprobs``: ``[token, top-N]`` ids and logprobs, and the token's rank."""
    top_vals, top_ids = torch.topk(logprobs, num_logprobs, dim=-1)
    token_ids = token_ids.unsqueeze(-1)
    token_vals = logprobs.gather(-1, token_ids)
    ranks = (logprobs >= token_vals).sum(-1)
    return torch.cat((token_ids, top_ids), dim=1), torch.cat((token_vals, top_vals), dim=1), ranks


def gather_token_logprobs(
    logprobs: torch.Tensor, wanted: list[int], token: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """vLLM's ``gather_specific_token_logprobs`` for one row: ``[token, *wanted]`` and the token's rank."""
    ids = torch.tensor([token, *wanted], dtype=torch.int64)
    vals = logprobs.gather(-1, ids)
    rank = (logprobs >= vals[0]).sum(-1)
    return ids.unsqueeze(0), vals.unsqueeze(0), rank.view(1)
