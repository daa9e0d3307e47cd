"""What the enclave keeps per request between steps, and its wiping when the request finishes.

The penalties, ``min_tokens``, bad words and a seeded generator need state that
outlives one step (:class:`SamplerState`). That state is zeroed the moment the host
reports the request finished (:meth:`SamplerRegistry.finish`), like every other piece
of per-request state in the enclave, and the registry bounds how many states a host
can make the enclave hold.
"""

from __future__ import annotations

import secrets
from typing import Any

import torch

from pccguard.enclave_runtime.vllm_executor.sampling_params import RequestSampling, int64_tensor, wire_int
from pccguard.enclave_runtime.vllm_executor.sampling_wire import Admission

#: The most requests whose sampler state the enclave holds at once.
MAX_STATES = 1 << 16


class SamplerState:
    """What one request leaves in the enclave between steps; :meth:`wipe` zeroes it in place.

    The prompt is kept (as its distinct tokens) only for a repetition penalty;
    the output tokens only when a penalty, bad words or ``min_tokens`` need
    them; the generator only for a seeded request.
    """

    def __init__(self, params: RequestSampling, prompt: list[int], outputs: list[int]) -> None:
        self.params = params
        keep_outputs = params.penalized or bool(params.bad_words)
        self.prompt = torch.unique(int64_tensor(prompt)) if params.needs_prompt else int64_tensor([])
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
            temperature=float(item.get("temperature", 0.0)), seed=None if seed is None else wire_int(seed)
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
