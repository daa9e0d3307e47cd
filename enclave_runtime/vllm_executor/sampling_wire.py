"""The sampling parts of the host ↔ enclave ``step`` protocol, both ends.

The host sends each request's sampling parameters once (:class:`Admission`,
piggybacked on the ``step`` message of its first sample, its tensors named
``a<index>.<name>``), and the grammar bitmasks of structured-output requests with
every step; the enclave answers with the sampled tokens and the logprob rows the
requests asked for (:class:`StepResult`). Every decoder checks what it reads: the
host is not trusted by the enclave, and the enclave's reply is checked by the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from pccguard.enclave_runtime.vllm_executor.sampling_params import (
    RequestSampling,
    int64_tensor,
    wire_token_ids,
)

#: The longest request key the enclave accepts from the host.
MAX_KEY_CHARS = 256


@dataclass
class Admission:
    """What the host sends once per request: its key, parameters, and the tokens penalties start from."""

    key: str
    params: RequestSampling
    prompt: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def to_wire(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        meta, tensors = self.params.to_wire()
        tensors |= {"prompt": int64_tensor(self.prompt), "outputs": int64_tensor(self.outputs)}
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
        prompt = wire_token_ids(tensors["prompt"]) if "prompt" in tensors else []
        outputs = wire_token_ids(tensors["outputs"]) if "outputs" in tensors else []
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
