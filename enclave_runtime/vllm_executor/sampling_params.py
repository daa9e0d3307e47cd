"""One request's sampling parameters as the enclave applies them, and what it refuses to sample.

:class:`RequestSampling` is read from vLLM's ``SamplingParams`` on the host,
travels in the request's admission (scalars in the message header, token-id lists
as tensors) and is validated again in the enclave, which does not trust the host to
have checked. :func:`unsupported` names the request parameters the enclave sampler
cannot honour; the host refuses those before they reach the engine (see
``pccguard.adapters.vllm.runtime.enclave_requests``). The integer readers here bound
what a hostile host can make the enclave decode. No vLLM import: this runs inside the
enclave process too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

#: vLLM's threshold below which a temperature means greedy sampling.
SAMPLING_EPS = 1e-5
LOGPROBS_MODES = frozenset({"raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits"})
#: The most token ids the enclave decodes from one tensor of the host's.
MAX_IDS = 1 << 22
_SEED_MIN, _SEED_MAX = -(1 << 63), (1 << 64) - 1


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
        tensors: dict[str, torch.Tensor] = {"stop": int64_tensor(self.stop_token_ids)}
        if self.logprob_token_ids is not None:
            tensors["lp_ids"] = int64_tensor(self.logprob_token_ids)
        if self.allowed_token_ids is not None:
            tensors["allowed"] = int64_tensor(self.allowed_token_ids)
        if self.logit_bias:
            tensors["bias_ids"] = int64_tensor([t for t, _ in self.logit_bias])
            tensors["bias"] = torch.tensor([b for _, b in self.logit_bias], dtype=torch.float64)
        if self.bad_words:
            tensors["bad"] = int64_tensor([t for w in self.bad_words for t in w])
            tensors["bad_len"] = int64_tensor([len(w) for w in self.bad_words])
        return meta, tensors

    @classmethod
    def from_wire(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor], vocab: int) -> RequestSampling:
        scalars: dict[str, Any] = {}
        for name in cls._SCALARS:
            value = meta.get(name, getattr(cls(), name))
            if name == "logprobs_mode":
                scalars[name] = str(value)
            elif name in ("top_k", "min_tokens", "seed", "logprobs"):
                scalars[name] = None if value is None and name in ("seed", "logprobs") else wire_int(value)
            else:
                scalars[name] = float(value)
        bad: list[tuple[int, ...]] = []
        if "bad" in tensors:
            flat, lengths = wire_token_ids(tensors["bad"]), wire_token_ids(tensors["bad_len"])
            if any(n <= 0 for n in lengths) or sum(lengths) != len(flat):
                raise ValueError("malformed bad words")
            start = 0
            for n in lengths:
                bad.append(tuple(flat[start : start + n]))
                start += n
        bias_ids = wire_token_ids(tensors["bias_ids"]) if "bias_ids" in tensors else []
        bias_vals = [float(b) for b in tensors["bias"].reshape(-1).tolist()] if "bias" in tensors else []
        if len(bias_ids) != len(bias_vals) or len(set(bias_ids)) != len(bias_ids):
            raise ValueError("malformed logit_bias")
        params = cls(
            **scalars,
            logprob_token_ids=tuple(wire_token_ids(tensors["lp_ids"])) if "lp_ids" in tensors else None,
            stop_token_ids=tuple(wire_token_ids(tensors["stop"])) if "stop" in tensors else (),
            allowed_token_ids=tuple(wire_token_ids(tensors["allowed"])) if "allowed" in tensors else None,
            logit_bias=tuple(zip(bias_ids, bias_vals, strict=True)),
            bad_words=tuple(bad),
        )
        params.validate(vocab)
        return params


def int64_tensor(values: Any) -> torch.Tensor:
    """Token ids as the ``int64`` tensor the wire format carries them in."""
    return torch.tensor(list(values), dtype=torch.int64)


def wire_int(value: Any) -> int:
    """An integer field from the host: a real ``int`` (not a bool, not a float), else refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


def wire_token_ids(t: torch.Tensor) -> list[int]:
    """A token-id tensor from the host: integer dtype and at most ``MAX_IDS`` entries, else refused."""
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
