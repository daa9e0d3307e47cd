"""The LLaMA decoder as the enclave runs it: every non-linear step, with linear groups delegated.

The decoder does not know where a base product is computed; it calls
``linear(layer, group, x)`` (see :mod:`.linear`), then adds public biases and
the private LoRA delta itself. Numerics follow ``transformers``' LLaMA in
float32 (RMSNorm in float32, RoPE on ``rotate_half``, grouped-query attention,
causal softmax) so the output matches the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from pccguard.enclave_runtime.model import LlamaWeights
from pccguard.enclave_runtime.plan import LAYER_GROUPS

LinearFn = Callable[[int, str, torch.Tensor], torch.Tensor]
LM_HEAD = -1


@dataclass
class RequestState:
    """Everything a request leaves in the enclave; :meth:`wipe` zeroes it in place."""

    k: torch.Tensor  # [layers, kv_heads, max_len, head_dim]
    v: torch.Tensor
    pos: int = 0
    secrets_used: list[torch.Tensor] = field(default_factory=list)  # masks and unblinding factors
    logits: list[torch.Tensor] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    wiped: bool = False

    def wipe(self) -> int:
        """Zero the KV cache, used masks, factors and logits; return the tokens the request had."""
        n = self.pos
        self.k.zero_()
        self.v.zero_()
        for t in (*self.secrets_used, *self.logits):
            t.zero_()
        self.tokens = [0] * len(self.tokens)
        self.pos = 0
        self.wiped = True
        return n

    def all_zero(self) -> bool:
        return all(not bool(t.any()) for t in (self.k, self.v, *self.secrets_used, *self.logits)) and not any(
            self.tokens
        )


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    var = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Decoder:
    """Greedy LLaMA decoding over a :data:`LinearFn`, with per-request state."""

    def __init__(self, weights: LlamaWeights, linear: LinearFn, merged: frozenset[tuple[int, str]]) -> None:
        self.spec = weights.spec
        self.linear = linear
        self.merged = merged
        s = self.spec
        self.embed = weights.embed()
        self.final_norm = weights.tensors["model.norm.weight"]
        self.in_norm = [
            weights.tensors[f"model.layers.{i}.input_layernorm.weight"] for i in range(s.n_layers)
        ]
        self.post_norm = [
            weights.tensors[f"model.layers.{i}.post_attention_layernorm.weight"] for i in range(s.n_layers)
        ]
        self.inv_freq = s.inv_freq()
        self.bias: dict[tuple[int, str], torch.Tensor] = {}
        self.lora: dict[tuple[int, str], list[tuple[slice, torch.Tensor, torch.Tensor]]] = {}
        groups = [(i, g) for i in range(s.n_layers) for g in LAYER_GROUPS] + [(LM_HEAD, "lm_head")]
        for layer, group in groups:
            bias = weights.group_bias(layer, group)
            if bias is not None:
                self.bias[(layer, group)] = bias
            parts = []
            for proj, sl in s.proj_slices(group).items():
                delta = weights.deltas.get((layer, proj))
                if delta is not None:  # x·ΔWᵀ = (x·Aᵀ)·(s·B)ᵀ, kept factored: O(r·(d_in+d_out))
                    parts.append((sl, delta.a.t().contiguous(), (delta.b * delta.scaling).t().contiguous()))
            if parts:
                self.lora[(layer, group)] = parts

    def new_state(self, max_len: int) -> RequestState:
        s = self.spec
        shape = (s.n_layers, s.n_kv_heads, max_len, s.head_dim)
        return RequestState(k=torch.zeros(shape), v=torch.zeros(shape))

    def _project(self, layer: int, group: str, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(layer, group, x)
        bias = self.bias.get((layer, group))
        if bias is not None:
            y = y + bias
        if (layer, group) in self.merged:
            return y  # the (insecure) obfuscated path already carries base + delta
        for sl, a_t, b_t in self.lora.get((layer, group), ()):
            y[:, sl] += (x @ a_t) @ b_t
        return y

    def _attention(self, layer: int, h: torch.Tensor, state: RequestState) -> torch.Tensor:
        s = self.spec
        n = h.shape[0]
        qkv = self._project(layer, "qkv", h)
        q_dim, kv_dim = s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim
        q = qkv[:, :q_dim].reshape(n, s.n_heads, s.head_dim).transpose(0, 1)
        k = qkv[:, q_dim : q_dim + kv_dim].reshape(n, s.n_kv_heads, s.head_dim).transpose(0, 1)
        v = qkv[:, q_dim + kv_dim :].reshape(n, s.n_kv_heads, s.head_dim).transpose(0, 1)
        start = state.pos
        positions = torch.arange(start, start + n, dtype=torch.float32)
        freqs = positions[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        state.k[layer, :, start : start + n] = k
        state.v[layer, :, start : start + n] = v
        keys = state.k[layer, :, : start + n]
        vals = state.v[layer, :, : start + n]
        rep = s.n_heads // s.n_kv_heads
        if rep > 1:
            keys = keys.repeat_interleave(rep, dim=0)
            vals = vals.repeat_interleave(rep, dim=0)
        scores = (q @ keys.transpose(1, 2)) * (s.head_dim**-0.5)
        if n > 1:
            causal = torch.ones(n, start + n, dtype=torch.bool).tril(diagonal=start)
            scores = scores.masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores.float(), dim=-1)
        ctx = (probs @ vals).transpose(0, 1).reshape(n, q_dim)
        return self._project(layer, "o", ctx)

    def forward(self, ids: list[int], state: RequestState) -> torch.Tensor:
        """Run ``ids`` at the state's next positions; return the logits of the last one."""
        s = self.spec
        if state.pos + len(ids) > state.k.shape[2]:
            raise ValueError("request longer than its state")
        if any(not 0 <= t < s.vocab for t in ids):
            raise ValueError("token id outside the vocabulary")
        x = self.embed[torch.tensor(ids)]
        for layer in range(s.n_layers):
            x = x + self._attention(layer, rms_norm(x, self.in_norm[layer], s.eps), state)
            h = rms_norm(x, self.post_norm[layer], s.eps)
            gu = self._project(layer, "gate_up", h)
            gate, up = gu[:, : s.intermediate], gu[:, s.intermediate :]
            x = x + self._project(layer, "down", torch.nn.functional.silu(gate) * up)
        state.pos += len(ids)
        last = rms_norm(x[-1:], self.final_norm, s.eps)
        return self._project(LM_HEAD, "lm_head", last)[0]

    def generate(
        self,
        prompt: list[int],
        max_new: int,
        state: RequestState,
        on_token: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Greedy decoding; logits and tokens are kept in ``state`` (wiped by the caller)."""
        logits = self.forward(prompt, state)
        for step in range(max_new):
            tok = int(torch.argmax(logits))
            state.tokens.append(tok)
            state.logits.append(logits)
            if on_token is not None:
                on_token(step + 1)
            if step == max_new - 1:
                break
            logits = self.forward([tok], state)
        return list(state.tokens)
