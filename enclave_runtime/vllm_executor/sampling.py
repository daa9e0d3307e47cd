"""Sampling in the enclave with vLLM's semantics: the logits never leave, only tokens (and asked-for logprobs).

vLLM's sampler runs in the model runner, next to the logits. Here the logits
exist only in the enclave process, so the whole sampler runs there too; the
host sends each request's sampling parameters once (:class:`Admission`,
piggybacked on the ``step`` message of its first sample) and the finished
request ids with every step, and the enclave keeps, per request, what the
penalties, ``min_tokens``, bad words and a seeded generator need
(:class:`SamplerState`). That state is zeroed the moment the host reports the
request finished (:meth:`SamplerRegistry.finish`), like every other piece of
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

This module never imports vLLM: it runs inside the enclave process. The batch
functions (:func:`apply_penalties`, :func:`apply_top_k_top_p`,
:func:`apply_min_p`, :func:`random_sample`, :func:`gather_logprobs`) take
vLLM's tensor shapes so that tests can compare them with vLLM's own.
:func:`unsupported` names the request parameters this sampler cannot honour;
the host refuses those before they reach the engine (see
``pccguard.adapters.vllm.runtime.enclave_requests``).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import torch

#: vLLM's threshold below which a temperature means greedy sampling.
SAMPLING_EPS = 1e-5
LOGPROBS_MODES = frozenset({"raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits"})
#: Bounds on what a (hostile) host may make the enclave hold per request.
MAX_KEY_CHARS = 256
MAX_IDS = 1 << 22
MAX_STATES = 1 << 16
_SEED_MIN, _SEED_MAX = -(1 << 63), (1 << 64) - 1


# --------------------------------------------------------------------------- batch operations (vLLM shapes)


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


# --------------------------------------------------------------------------- per-request parameters


def _ids(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class RequestSampling:
    """One request's sampling parameters as the enclave applies them (vLLM's names and defaults)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    min_tokens: int = 0
    #: Top-N logprobs per sampled token (the vocabulary size for "all"); None: none.
    logprobs: int | None = None
    logprobs_mode: str = "raw_logprobs"
    logprob_token_ids: tuple[int, ...] | None = None
    #: Masked while fewer than ``min_tokens`` tokens were generated (vLLM's ``all_stop_token_ids``).
    stop_token_ids: tuple[int, ...] = ()
    allowed_token_ids: tuple[int, ...] | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    bad_words: tuple[tuple[int, ...], ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature < SAMPLING_EPS

    @property
    def penalized(self) -> bool:
        return self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs is not None or bool(self.logprob_token_ids)

    @property
    def needs_prompt(self) -> bool:
        """Only the repetition penalty looks at the prompt."""
        return self.repetition_penalty != 1.0

    @classmethod
    def from_params(cls, params: Any, *, vocab: int, logprobs_mode: str = "raw_logprobs") -> RequestSampling:
        """From vLLM's ``SamplingParams`` (read by attribute: this module does not import vLLM)."""
        temperature = float(getattr(params, "temperature", 0.0) or 0.0)
        greedy = temperature < SAMPLING_EPS
        top_k = int(getattr(params, "top_k", 0) or 0)
        logprobs = getattr(params, "logprobs", None)
        if logprobs is not None:
            logprobs = vocab if int(logprobs) == -1 else int(logprobs)
        wanted = getattr(params, "logprob_token_ids", None)
        bias = getattr(params, "logit_bias", None) or {}
        allowed = getattr(params, "allowed_token_ids", None)
        seed = getattr(params, "seed", None)
        return cls(
            temperature=0.0 if greedy else temperature,
            top_p=1.0 if greedy else float(getattr(params, "top_p", 1.0)),
            top_k=0 if greedy or top_k <= 0 or top_k >= vocab else top_k,
            min_p=0.0 if greedy else float(getattr(params, "min_p", 0.0) or 0.0),
            presence_penalty=float(getattr(params, "presence_penalty", 0.0) or 0.0),
            frequency_penalty=float(getattr(params, "frequency_penalty", 0.0) or 0.0),
            repetition_penalty=float(getattr(params, "repetition_penalty", 1.0)),
            seed=None if greedy or seed is None else int(seed),
            min_tokens=int(getattr(params, "min_tokens", 0) or 0),
            logprobs=logprobs,
            logprobs_mode=logprobs_mode,
            logprob_token_ids=_ids(wanted) if wanted else None,
            stop_token_ids=tuple(sorted(_ids(getattr(params, "all_stop_token_ids", None) or ())))
            if int(getattr(params, "min_tokens", 0) or 0) > 0
            else (),
            allowed_token_ids=_ids(allowed) if allowed else None,
            logit_bias=tuple((int(t), float(b)) for t, b in bias.items()),
            bad_words=tuple(_ids(w) for w in (getattr(params, "bad_words_token_ids", None) or ()) if w),
        )

    def validate(self, vocab: int) -> None:
        """Refuse parameters no vLLM request could carry (the host is not trusted to have checked)."""
        finite = (self.temperature, self.top_p, self.min_p, self.presence_penalty, self.frequency_penalty)
        if not all(math.isfinite(v) for v in (*finite, self.repetition_penalty)):
            raise ValueError("sampling parameters must be finite")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or not 0 <= self.min_p <= 1:
            raise ValueError("temperature, top_p or min_p out of range")
        if self.repetition_penalty <= 0 or self.top_k < 0 or self.min_tokens < 0:
            raise ValueError("repetition_penalty, top_k or min_tokens out of range")
        if self.seed is not None and not _SEED_MIN <= self.seed <= _SEED_MAX:
            raise ValueError("seed out of range")
        if self.logprobs is not None and not 0 <= self.logprobs <= vocab:
            raise ValueError("logprobs out of range")
        if self.logprobs_mode not in LOGPROBS_MODES:
            raise ValueError("unknown logprobs mode")
        if not all(math.isfinite(b) for _, b in self.logit_bias):
            raise ValueError("logit_bias must be finite")
        lists = [
            self.logprob_token_ids or (),
            self.stop_token_ids,
            self.allowed_token_ids or (),
            tuple(t for t, _ in self.logit_bias),
            *self.bad_words,
        ]
        if any(not 0 <= t < vocab for ids in lists for t in ids):
            raise ValueError("token id outside the vocabulary")
        if self.allowed_token_ids == () or any(not w for w in self.bad_words):
            raise ValueError("empty token list")

    # -- wire format: scalars in the JSON header, token-id lists as tensors
    _SCALARS = (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "seed",
        "min_tokens",
        "logprobs",
        "logprobs_mode",
    )

    def to_wire(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        meta: dict[str, Any] = {name: getattr(self, name) for name in self._SCALARS}
        tensors: dict[str, torch.Tensor] = {"stop": _i64(self.stop_token_ids)}
        if self.logprob_token_ids is not None:
            tensors["lp_ids"] = _i64(self.logprob_token_ids)
        if self.allowed_token_ids is not None:
            tensors["allowed"] = _i64(self.allowed_token_ids)
        if self.logit_bias:
            tensors["bias_ids"] = _i64([t for t, _ in self.logit_bias])
            tensors["bias"] = torch.tensor([b for _, b in self.logit_bias], dtype=torch.float64)
        if self.bad_words:
            tensors["bad"] = _i64([t for w in self.bad_words for t in w])
            tensors["bad_len"] = _i64([len(w) for w in self.bad_words])
        return meta, tensors

    @classmethod
    def from_wire(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor], vocab: int) -> RequestSampling:
        scalars: dict[str, Any] = {}
        for name in cls._SCALARS:
            value = meta.get(name, getattr(cls(), name))
            if name == "logprobs_mode":
                scalars[name] = str(value)
            elif name in ("top_k", "min_tokens", "seed", "logprobs"):
                scalars[name] = None if value is None and name in ("seed", "logprobs") else _int(value)
            else:
                scalars[name] = float(value)
        bad: list[tuple[int, ...]] = []
        if "bad" in tensors:
            flat, lengths = _list(tensors["bad"]), _list(tensors["bad_len"])
            if any(n <= 0 for n in lengths) or sum(lengths) != len(flat):
                raise ValueError("malformed bad words")
            start = 0
            for n in lengths:
                bad.append(tuple(flat[start : start + n]))
                start += n
        bias_ids = _list(tensors["bias_ids"]) if "bias_ids" in tensors else []
        bias_vals = [float(b) for b in tensors["bias"].reshape(-1).tolist()] if "bias" in tensors else []
        if len(bias_ids) != len(bias_vals) or len(set(bias_ids)) != len(bias_ids):
            raise ValueError("malformed logit_bias")
        params = cls(
            **scalars,
            logprob_token_ids=tuple(_list(tensors["lp_ids"])) if "lp_ids" in tensors else None,
            stop_token_ids=tuple(_list(tensors["stop"])) if "stop" in tensors else (),
            allowed_token_ids=tuple(_list(tensors["allowed"])) if "allowed" in tensors else None,
            logit_bias=tuple(zip(bias_ids, bias_vals, strict=True)),
            bad_words=tuple(bad),
        )
        params.validate(vocab)
        return params


def _i64(values: Any) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.int64)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


def _list(t: torch.Tensor) -> list[int]:
    if t.dtype not in (torch.int64, torch.int32) or t.numel() > MAX_IDS:
        raise ValueError("token ids must be a bounded integer tensor")
    return [int(v) for v in t.reshape(-1).tolist()]


def unsupported(params: Any) -> list[tuple[str, str]]:
    """``(parameter, reason)`` for each request parameter the enclave sampler cannot honour.

    Everything else vLLM's sampler does per request is implemented here, and
    structured outputs arrive as a grammar bitmask with the step; stop strings,
    stop tokens, ``max_tokens``, ``n`` and repetition detection are the
    engine's, not the sampler's, and keep working.
    """
    found: list[tuple[str, str]] = []
    if getattr(params, "prompt_logprobs", None) is not None:
        found.append(("prompt_logprobs", "the enclave executor does not return prompt logprobs"))
    if getattr(params, "prompt_logprob_token_ids", None) is not None:
        found.append(("prompt_logprob_token_ids", "the enclave executor does not score prompt tokens"))
    if getattr(params, "thinking_token_budget", None) is not None:
        found.append(("thinking_token_budget", "the enclave executor does not enforce thinking budgets"))
    if getattr(params, "trace_decode_token_ids", None):
        found.append(("trace_decode_token_ids", "the enclave executor does not replay traces"))
    return found


# --------------------------------------------------------------------------- per-request state


@dataclass
class Admission:
    """What the host sends once per request: its key, parameters, and the tokens penalties start from."""

    key: str
    params: RequestSampling
    prompt: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def to_wire(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        meta, tensors = self.params.to_wire()
        tensors |= {"prompt": _i64(self.prompt), "outputs": _i64(self.outputs)}
        return {"key": self.key, "params": meta}, tensors

    @classmethod
    def from_wire(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor], vocab: int) -> Admission:
        if not isinstance(meta, dict):
            raise ValueError("bad admission")
        key = meta.get("key")
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            raise ValueError("bad request key")
        params = meta.get("params")
        if not isinstance(params, dict):
            raise ValueError("bad sampling parameters")
        prompt = _list(tensors["prompt"]) if "prompt" in tensors else []
        outputs = _list(tensors["outputs"]) if "outputs" in tensors else []
        if any(not 0 <= t < vocab for t in (*prompt, *outputs)):
            raise ValueError("token id outside the vocabulary")
        return cls(key, RequestSampling.from_wire(params, tensors, vocab), prompt, outputs)


def admission_tensors(tensors: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """The tensors of the ``index``-th admission of a step message (named ``a{index}.<name>``)."""
    prefix = f"a{index}."
    return {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}


def grammar_to_wire(masks: dict[int, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A step's grammar bitmasks for the ``step`` message: ``{sampled row: int32 words}``."""
    if not masks:
        return {}, {}
    rows = sorted(masks)
    return {"grammar_rows": rows}, {"grammar": torch.stack([masks[r].to(torch.int32) for r in rows])}


def grammar_from_wire(
    meta: dict[str, Any], tensors: dict[str, torch.Tensor], sampled: int, vocab: int
) -> dict[int, torch.Tensor]:
    """The enclave's side of :func:`grammar_to_wire`, checked against this step's sampled rows.

    A bitmask row is exactly ``ceil(vocab / 32)`` words (the grammar backend
    sizes it from the model's vocabulary): a different width means host and
    enclave disagree about the model, and nothing is sampled under it.
    """
    rows = meta.get("grammar_rows")
    if rows is None:
        if "grammar" in tensors:
            raise ValueError("bitmask without rows")
        return {}
    masks = tensors.get("grammar")
    if not isinstance(rows, list) or masks is None or masks.dtype != torch.int32 or masks.dim() != 2:
        raise ValueError("malformed")
    if masks.shape != (len(rows), -(-vocab // 32)):
        raise ValueError(
            f"shape {tuple(masks.shape)} does not fit {len(rows)} rows of a {vocab}-token vocabulary"
        )
    if any(not isinstance(r, int) or not 0 <= r < sampled for r in rows) or len(set(rows)) != len(rows):
        raise ValueError("row outside this step's sampled requests")
    return {int(r): masks[i] for i, r in enumerate(rows)}


class SamplerState:
    """What one request leaves in the enclave between steps; :meth:`wipe` zeroes it in place.

    The prompt is kept (as its distinct tokens) only for a repetition penalty;
    the output tokens only when a penalty, bad words or ``min_tokens`` need
    them; the generator only for a seeded request.
    """

    def __init__(self, params: RequestSampling, prompt: list[int], outputs: list[int]) -> None:
        self.params = params
        keep_outputs = params.penalized or bool(params.bad_words)
        self.prompt = torch.unique(_i64(prompt)) if params.needs_prompt else _i64([])
        self.out = torch.zeros(max(16, 2 * len(outputs)) if keep_outputs else 0, dtype=torch.int64)
        self.keep_outputs = keep_outputs
        self.generated = 0
        self.generator: torch.Generator | None = None
        if params.seed is not None and not params.greedy:
            self.generator = torch.Generator()
            self.generator.manual_seed(params.seed)
        self.wiped = False
        for token in outputs:
            self.append(token)

    def outputs(self) -> torch.Tensor:
        return self.out[: self.generated] if self.keep_outputs else self.out

    def append(self, token: int) -> None:
        if self.keep_outputs:
            if self.generated == self.out.numel():
                grown = torch.zeros(2 * self.out.numel(), dtype=torch.int64)
                grown[: self.generated] = self.out
                self.out.zero_()
                self.out = grown
            self.out[self.generated] = token
        self.generated += 1

    def wipe(self) -> None:
        self.prompt.zero_()
        self.out.zero_()
        self.generated = 0
        if self.generator is not None:
            self.generator.manual_seed(0)
        self.params = RequestSampling()
        self.wiped = True

    def all_zero(self) -> bool:
        return not bool(self.prompt.any()) and not bool(self.out.any()) and self.generated == 0


class SamplerRegistry:
    """The enclave's per-request sampler states, keyed by the host's request id."""

    def __init__(self, vocab: int, *, debug: bool = False) -> None:
        self.vocab = vocab
        self.debug = debug
        self.states: dict[str, SamplerState] = {}
        self.entropy = torch.Generator()
        self.entropy.manual_seed(secrets.randbits(63))
        self.wiped = 0
        self.last_wiped: SamplerState | None = None

    def __len__(self) -> int:
        return len(self.states)

    def admit(self, admissions: list[Admission]) -> None:
        if len(self.states) + len(admissions) > MAX_STATES:
            raise ValueError("too many requests in the enclave")
        for a in admissions:
            old = self.states.pop(a.key, None)
            if old is not None:
                self._wipe(old)
            self.states[a.key] = SamplerState(a.params, a.prompt, a.outputs)

    def finish(self, keys: list[Any]) -> int:
        """Wipe and forget the states of finished requests (unknown keys are ignored)."""
        n = 0
        for key in keys:
            state = self.states.pop(str(key), None)
            if state is not None:
                self._wipe(state)
                n += 1
        return n

    def wipe_all(self) -> None:
        self.finish(list(self.states))
        self.entropy.manual_seed(0)

    def _wipe(self, state: SamplerState) -> None:
        state.wipe()
        self.wiped += 1
        if self.debug:
            self.last_wiped = state

    def get(self, key: Any) -> SamplerState:
        state = self.states.get(str(key))
        if state is None:
            raise ValueError("sampling for a request the enclave was not given")
        return state

    def entry(self, item: dict[str, Any]) -> tuple[RequestSampling, SamplerState | None]:
        """A ``sample`` item's parameters and state: its admitted ``key``, or its own stateless temperature/seed."""
        if "key" in item:
            state = self.get(item["key"])
            return state.params, state
        seed = item.get("seed")
        params = RequestSampling(
            temperature=float(item.get("temperature", 0.0)), seed=None if seed is None else _int(seed)
        )
        params.validate(self.vocab)
        return params, (
            SamplerState(params, [], []) if params.seed is not None and not params.greedy else None
        )

    def inspect(self) -> dict[str, Any]:
        """Debug-only: which states exist, and whether the last wiped one is all zero."""
        last = self.last_wiped
        return {
            "states": len(self.states),
            "keys": sorted(self.states),
            "wiped": self.wiped,
            "last_wiped_all_zero": bool(last is not None and last.wiped and last.all_zero()),
        }


# --------------------------------------------------------------------------- one request, one row


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
        outputs = state.outputs() if state is not None else _i64([])
        generated = state.generated if state is not None else 0
        _constrain(logits, params, outputs, generated)
        if params.penalized:
            prompt = state.prompt if state is not None else _i64([])
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


class StepResult(list[int]):
    """The tokens of one step (a list, as before), plus the logprob rows of the requests that asked.

    ``logprob_rows[j]`` is the index, among this step's sampled tokens, of the
    row ``j`` of ``logprob_ids`` / ``logprob_values`` / ``logprob_ranks``.
    """

    logprob_rows: tuple[int, ...] = ()
    logprob_ids: torch.Tensor | None = None
    logprob_values: torch.Tensor | None = None
    logprob_ranks: torch.Tensor | None = None

    @classmethod
    def from_reply(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> StepResult:
        result = cls(int(t) for t in tensors["tokens"].reshape(-1).tolist())
        result.logprob_rows = tuple(int(i) for i in meta.get("lp_rows") or [])
        result.logprob_ids = tensors.get("lp_ids")
        result.logprob_values = tensors.get("lp_vals")
        result.logprob_ranks = tensors.get("lp_ranks")
        if result.logprob_rows and (
            result.logprob_ids is None
            or result.logprob_values is None
            or result.logprob_ranks is None
            or result.logprob_ids.shape[0] != len(result.logprob_rows)
            or result.logprob_values.shape != result.logprob_ids.shape
            or any(not 0 <= i < len(result) for i in result.logprob_rows)
        ):
            raise ValueError("malformed logprobs in the enclave's reply")
        return result
