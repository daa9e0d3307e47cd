"""The enclave's decoder over a paged KV cache indexed by the serving engine's block tables.

Why a second forward path: :class:`~pccguard.enclave_runtime.decoder.Decoder`
keeps one contiguous KV buffer per request, sized at admission. A serving
engine instead owns the block allocation (prefix sharing, preemption, chunked
prefill) and only tells the model, per step, which blocks hold which positions.
Here the blocks live in the enclave process; the host sends token ids, start
positions and block tables, and receives sampled token ids. All requests of a
step share one call per linear group, so a blinded offload costs one round per
group and step, not per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pccguard.enclave_runtime.decoder import LM_HEAD, Decoder, rms_norm, rotate_half


@dataclass
class Chunk:
    """The tokens one request computes in this step, at positions ``start .. start+len(ids)``."""

    ids: list[int]
    start: int
    blocks: list[int]


class PagedKV:
    """Keys and values in blocks: ``[layers, num_blocks, kv_heads, block_size, head_dim]`` each."""

    def __init__(self, layers: int, num_blocks: int, kv_heads: int, block_size: int, head_dim: int) -> None:
        shape = (layers, num_blocks, kv_heads, block_size, head_dim)
        self.k = torch.zeros(shape)
        self.v = torch.zeros(shape)
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.zeroed_blocks = 0

    def nbytes(self) -> int:
        return int(2 * self.k.numel() * self.k.element_size())

    def zero(self, block_ids: list[int]) -> int:
        """Zero whole blocks (every layer); reject ids outside the cache rather than clamp them."""
        ids = sorted({int(i) for i in block_ids})
        if any(not 0 <= i < self.num_blocks for i in ids):
            raise ValueError("block id outside the KV cache")
        if ids:
            index = torch.tensor(ids)
            self.k[:, index] = 0.0
            self.v[:, index] = 0.0
        self.zeroed_blocks += len(ids)
        return len(ids)

    def holding(self, block_ids: list[int]) -> list[int]:
        """Those of these blocks in which any layer's keys or values are not all zero (residue sampling).

        One bit per block the host names, never a value: whether a block it
        holds free still carries data is the property being checked.
        """
        ids = sorted({int(i) for i in block_ids})
        if any(not 0 <= i < self.num_blocks for i in ids):
            raise ValueError("block id outside the KV cache")
        if not ids:
            return []
        index = torch.tensor(ids)
        held = self.k[:, index].ne(0).flatten(2).any(dim=2).any(dim=0)
        held |= self.v[:, index].ne(0).flatten(2).any(dim=2).any(dim=0)
        return [i for i, h in zip(ids, held.tolist(), strict=True) if h]

    def slots(self, chunk: Chunk) -> tuple[torch.Tensor, torch.Tensor]:
        """(block, offset) of every position the chunk writes."""
        pos = torch.arange(chunk.start, chunk.start + len(chunk.ids))
        table = self._table(chunk, chunk.start + len(chunk.ids))
        return table[pos // self.block_size], pos % self.block_size

    def _table(self, chunk: Chunk, length: int) -> torch.Tensor:
        need = -(-length // self.block_size)
        if need > len(chunk.blocks):
            raise ValueError("block table shorter than the request")
        table = torch.tensor(chunk.blocks[:need], dtype=torch.int64)
        if bool(((table < 0) | (table >= self.num_blocks)).any()):
            raise ValueError("block id outside the KV cache")
        return table

    def context(self, layer: int, chunk: Chunk) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of positions ``0 .. start+len(ids)`` as ``[kv_heads, ctx, head_dim]``."""
        length = chunk.start + len(chunk.ids)
        table = self._table(chunk, length)
        k = self.k[layer, table].permute(1, 0, 2, 3).reshape(self.k.shape[2], -1, self.k.shape[4])
        v = self.v[layer, table].permute(1, 0, 2, 3).reshape(self.v.shape[2], -1, self.v.shape[4])
        return k[:, :length], v[:, :length]


class PagedDecoder(Decoder):
    """:class:`Decoder` numerics (RMSNorm, RoPE, GQA, LoRA deltas) over :class:`PagedKV`."""

    @classmethod
    def from_decoder(cls, decoder: Decoder) -> PagedDecoder:
        """Share a built decoder's tensors (no second copy of the weights in the enclave)."""
        paged = cls.__new__(cls)
        paged.__dict__.update(decoder.__dict__)
        return paged

    def _paged_attention(self, layer: int, h: torch.Tensor, chunks: list[Chunk], kv: PagedKV) -> torch.Tensor:
        s = self.spec
        qkv = self._project(layer, "qkv", h)
        q_dim, kv_dim = s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim
        out = torch.empty(h.shape[0], q_dim)
        row = 0
        rep = s.n_heads // s.n_kv_heads
        for chunk in chunks:
            n = len(chunk.ids)
            part = qkv[row : row + n]
            q = part[:, :q_dim].reshape(n, s.n_heads, s.head_dim).transpose(0, 1)
            k = part[:, q_dim : q_dim + kv_dim].reshape(n, s.n_kv_heads, s.head_dim).transpose(0, 1)
            v = part[:, q_dim + kv_dim :].reshape(n, s.n_kv_heads, s.head_dim).transpose(0, 1)
            positions = torch.arange(chunk.start, chunk.start + n, dtype=torch.float32)
            freqs = positions[:, None] * self.inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            blocks, offsets = kv.slots(chunk)
            kv.k[layer, blocks, :, offsets] = k.transpose(0, 1)
            kv.v[layer, blocks, :, offsets] = v.transpose(0, 1)
            keys, vals = kv.context(layer, chunk)
            if rep > 1:
                keys = keys.repeat_interleave(rep, dim=0)
                vals = vals.repeat_interleave(rep, dim=0)
            scores = (q @ keys.transpose(1, 2)) * (s.head_dim**-0.5)
            if n > 1:
                causal = torch.ones(n, chunk.start + n, dtype=torch.bool).tril(diagonal=chunk.start)
                scores = scores.masked_fill(~causal, float("-inf"))
            probs = torch.softmax(scores.float(), dim=-1)
            out[row : row + n] = (probs @ vals).transpose(0, 1).reshape(n, q_dim)
            row += n
        return self._project(layer, "o", out)

    def forward_paged(self, chunks: list[Chunk], kv: PagedKV, want: list[bool] | None = None) -> torch.Tensor:
        """Run every chunk at its positions; return the last-token logits of the chunks in ``want``.

        A chunk in the middle of a chunked prefill needs no logits; skipping its
        LM head saves the largest product of the step (and its offload round).
        The result is ``[sum(want), vocab]`` (every chunk when ``want`` is None).
        """
        s = self.spec
        ids = [t for c in chunks for t in c.ids]
        if not ids or any(not c.ids for c in chunks):
            raise ValueError("empty chunk")
        if any(not 0 <= t < s.vocab for t in ids):
            raise ValueError("token id outside the vocabulary")
        if any(c.start < 0 for c in chunks):
            raise ValueError("negative position")
        x = self.embed[torch.tensor(ids)]
        for layer in range(s.n_layers):
            x = x + self._paged_attention(layer, rms_norm(x, self.in_norm[layer], s.eps), chunks, kv)
            h = rms_norm(x, self.post_norm[layer], s.eps)
            gu = self._project(layer, "gate_up", h)
            gate, up = gu[:, : s.intermediate], gu[:, s.intermediate :]
            x = x + self._project(layer, "down", torch.nn.functional.silu(gate) * up)
        ends = torch.tensor([len(c.ids) for c in chunks]).cumsum(0) - 1
        if want is not None:
            ends = ends[torch.tensor(want, dtype=torch.bool)]
        if ends.numel() == 0:
            return torch.empty(0, s.vocab)
        last = rms_norm(x[ends], self.final_norm, s.eps)
        return self._project(LM_HEAD, "lm_head", last)
