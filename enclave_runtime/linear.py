"""Where the enclave computes ``x · W₀`` for each linear group, as the plan places it.

* ``enclave``: a float32 GEMM inside the enclave.
* ``offload_blinded`` (Mode P): fixed-point encode ``x``, add a fresh one-time
  pad ``r`` (one per token row, never reused), send ``x̃ = x_q + r mod p``; the
  accelerator returns ``ỹ = x̃·W_q mod p``; the enclave subtracts the
  precomputed ``u = r·W_q``, lifts, rescales, and (optionally) runs the
  Freivalds check ``ỹ·s ≡ x̃·(W_q s)`` with a secret ``s``.
* ``offload_clear``: public weight on public data (the checker guarantees it).
* ``offload_obfuscated``: INSECURE positive control — the merged private
  weight with permuted, scaled output columns; the input travels in the clear.

``(r, u)`` pairs are precomputed offline into a pool (the notes' offline cost:
one GEMM pass per token); a request that outruns the pool computes them online
and the miss is counted.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from pccguard.enclave_runtime import field as F
from pccguard.enclave_runtime.channel import ChannelClosed, ChannelTimeout
from pccguard.enclave_runtime.codec import Message, WireError
from pccguard.enclave_runtime.errors import AcceleratorLost, IntegrityError
from pccguard.enclave_runtime.model import LlamaWeights
from pccguard.enclave_runtime.plan import LAYER_GROUPS, PartitionPlan

Key = tuple[int, str]
LM_HEAD = -1


class AcceleratorLink(Protocol):
    """What the executor needs of the accelerator: one request, one reply, within a deadline."""

    def request(self, msg: Message, timeout: float | None) -> Message: ...


def all_groups(n_layers: int) -> list[Key]:
    return [(i, g) for i in range(n_layers) for g in LAYER_GROUPS] + [(LM_HEAD, "lm_head")]


@dataclass
class Blinded:
    w_q: torch.Tensor  # float64 integers [d_in, d_out], |w| ≤ w_qmax
    s_w: torch.Tensor  # float64 [d_out]
    w_qmax: int
    x_qmax: int
    check_s: torch.Tensor | None = None
    check_ws: torch.Tensor | None = None


@dataclass
class Obfuscated:
    perm: torch.Tensor  # column j of W̃ is column perm[j] of W, times alpha[j]
    alpha: torch.Tensor


@dataclass
class Stats:
    """Counters the benchmark reads: traffic per group, rounds, online/offline seconds, pool misses."""

    bytes_up: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_down: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    elems_up: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    elems_down: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rounds: int = 0
    offline_s: float = 0.0
    offline_rows: int = 0
    pool_miss_rows: int = 0
    freivalds_checks: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "bytes_up": dict(self.bytes_up),
            "bytes_down": dict(self.bytes_down),
            "elems_up": dict(self.elems_up),
            "elems_down": dict(self.elems_down),
            "rounds": self.rounds,
            "offline_s": self.offline_s,
            "offline_rows": self.offline_rows,
            "pool_miss_rows": self.pool_miss_rows,
            "freivalds_checks": self.freivalds_checks,
        }


@dataclass
class _Chunk:
    r: torch.Tensor
    u: torch.Tensor
    offset: int = 0

    @property
    def left(self) -> int:
        return int(self.r.shape[0]) - self.offset


class MaskPool:
    """Precomputed ``(r, u = r·W_q mod p)`` rows per group; each row is handed out once, then zeroed."""

    def __init__(self) -> None:
        self.chunks: dict[Key, deque[_Chunk]] = defaultdict(deque)

    def add(self, key: Key, r: torch.Tensor, u: torch.Tensor) -> None:
        self.chunks[key].append(_Chunk(r, u))

    def available(self, key: Key) -> int:
        return sum(c.left for c in self.chunks[key])

    def take(self, key: Key, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
        """Up to ``n`` rows as copies; the pool's own rows are zeroed as they are handed out."""
        rs, us = [], []
        got = 0
        queue = self.chunks[key]
        while got < n and queue:
            c = queue[0]
            k = min(n - got, c.left)
            sl = slice(c.offset, c.offset + k)
            rs.append(c.r[sl].clone())
            us.append(c.u[sl].clone())
            c.r[sl].zero_()
            c.u[sl].zero_()
            got += k
            c.offset += k
            if c.left == 0:
                queue.popleft()
        return rs, us, got

    def wipe(self) -> None:
        for queue in self.chunks.values():
            for c in queue:
                c.r.zero_()
                c.u.zero_()
        self.chunks.clear()


class GroupExecutor:
    """The ``linear(layer, group, x)`` callable of the decoder, honouring the plan."""

    def __init__(
        self, weights: LlamaWeights, plan: PartitionPlan, accel: AcceleratorLink | None, timeout: float
    ) -> None:
        self.plan = plan
        self.accel = accel
        self.timeout = timeout
        self.stats = Stats()
        self.pool = MaskPool()
        self.local: dict[Key, torch.Tensor] = {}
        self.blinded: dict[Key, Blinded] = {}
        self.clear: set[Key] = set()
        self.obfuscated: dict[Key, Obfuscated] = {}
        self.merged: set[Key] = set()
        self.secrets_sink: list[torch.Tensor] | None = None
        self.on_round: Callable[[], None] | None = None  # heartbeat hook of the enclave loop
        self.d_out: dict[Key, int] = {}
        self._setup(weights)

    def placement(self, key: Key) -> str:
        layer, group = key
        return self.plan.placement(f"{group}.base", layer)

    def _load(self, key: Key, mode: str, w: torch.Tensor) -> None:
        assert self.accel is not None, "plan offloads but no accelerator is attached"
        meta = {"layer": key[0], "group": key[1], "mode": mode}
        self._call(Message("load", meta, {"w": w}), expect="ok")

    def _setup(self, weights: LlamaWeights) -> None:
        rng = secrets.SystemRandom()
        for key in all_groups(weights.spec.n_layers):
            layer, group = key
            w = weights.group_weight(layer, group)
            self.d_out[key] = w.shape[1]
            where = self.placement(key)
            if where == "enclave":
                self.local[key] = w
            elif where == "offload_blinded":
                w_q, s_w, w_qmax = F.quantize_weight(w)
                entry = Blinded(w_q, s_w, w_qmax, F.act_qmax(w.shape[0], w_qmax))
                if self.plan.integrity == "freivalds":
                    entry.check_s = F.freivalds_vector(w.shape[1])
                    entry.check_ws = F.freivalds_precompute(w_q, entry.check_s)
                self.blinded[key] = entry
                self._load(key, "blinded", w_q.to(torch.int32))
            elif where == "offload_clear":
                self.clear.add(key)
                self._load(key, "clear", w)
            elif where == "offload_obfuscated":
                merged = w.clone()
                if self.plan.placement(f"{group}.delta", layer) == "offload_obfuscated":
                    delta = weights.group_delta(layer, group)
                    if delta is not None:
                        merged += delta
                    self.merged.add(key)
                order = list(range(w.shape[1]))
                rng.shuffle(order)
                perm = torch.tensor(order)
                alpha = torch.tensor([rng.uniform(0.5, 2.0) for _ in order], dtype=torch.float32)
                self.obfuscated[key] = Obfuscated(perm, alpha)
                self._load(key, "obfuscated", (merged[:, perm] * alpha).contiguous())
            else:  # the checker rejects anything else before we get here
                raise ValueError(f"unknown placement {where}")

    # ------------------------------------------------------------------ accelerator calls

    def _call(self, msg: Message, expect: str) -> Message:
        assert self.accel is not None
        try:
            reply = self.accel.request(msg, self.timeout)
        except ChannelClosed as exc:
            raise AcceleratorLost(f"accelerator closed the channel ({exc})") from exc
        except ChannelTimeout as exc:
            raise AcceleratorLost(f"accelerator did not answer within {self.timeout:.1f}s") from exc
        except WireError as exc:
            raise IntegrityError(f"malformed accelerator reply: {exc}") from exc
        if reply.kind != expect:
            raise IntegrityError(f"accelerator replied {reply.kind!r} instead of {expect!r}")
        return reply

    def _offload(self, key: Key, x: torch.Tensor, field_elems: bool, d_out: int) -> torch.Tensor:
        meta = {"layer": key[0], "group": key[1]}
        msg = Message("gemm", meta, {"x": x}, frozenset({"x"}) if field_elems else frozenset())
        reply = self._call(msg, expect="result")
        y = reply.tensors.get("y")
        want_dtype = torch.int64 if field_elems else torch.float32
        if y is None or tuple(y.shape) != (x.shape[0], d_out) or y.dtype != want_dtype:
            raise IntegrityError("accelerator reply has the wrong shape or type")
        if field_elems and "y" not in reply.field_names:
            raise IntegrityError("accelerator reply is not a field tensor")
        name = key[1]
        if self.on_round is not None:
            self.on_round()
        self.stats.rounds += 1
        self.stats.bytes_up[name] += msg.nbytes()
        self.stats.bytes_down[name] += reply.nbytes()
        self.stats.elems_up[name] += x.numel()
        self.stats.elems_down[name] += y.numel()
        return y

    # ------------------------------------------------------------------ blinding

    def precompute(self, n_tokens: int) -> float:
        """Offline: fresh ``(r, u)`` rows for ``n_tokens`` tokens in every blinded group."""
        start = time.perf_counter()
        for key, entry in self.blinded.items():
            r = F.random_field((n_tokens, entry.w_q.shape[0]))
            self.pool.add(key, r, F.matmul_mod(r, entry.w_q, entry.w_qmax))
        spent = time.perf_counter() - start
        self.stats.offline_s += spent
        self.stats.offline_rows += n_tokens
        return spent

    def _masks(self, key: Key, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rs, us, got = self.pool.take(key, n)
        if got < n:
            entry = self.blinded[key]
            r = F.random_field((n - got, entry.w_q.shape[0]))
            rs.append(r)
            us.append(F.matmul_mod(r, entry.w_q, entry.w_qmax))
            self.stats.pool_miss_rows += n - got
        r, u = torch.cat(rs), torch.cat(us)
        for t in (*rs, *us):
            t.zero_()
        if self.secrets_sink is not None:
            self.secrets_sink += [r, u]
        return r, u

    def _blinded(self, key: Key, x: torch.Tensor) -> torch.Tensor:
        entry = self.blinded[key]
        x_q, s_x = F.quantize_rows(x, entry.x_qmax)
        r, u = self._masks(key, x.shape[0])
        x_blind = torch.remainder(x_q + r, F.P)
        x_q.zero_()
        y_blind = self._offload(key, x_blind, True, entry.w_q.shape[1])
        if entry.check_s is not None and entry.check_ws is not None:
            self.stats.freivalds_checks += 1
            if not F.freivalds_ok(x_blind, y_blind, entry.check_s, entry.check_ws):
                raise IntegrityError(f"Freivalds check failed for layer {key[0]} {key[1]}")
        y_q = F.lift(torch.remainder(y_blind - u, F.P))
        return (y_q.to(torch.float64) * s_x * entry.s_w).to(torch.float32)

    def __call__(self, layer: int, group: str, x: torch.Tensor) -> torch.Tensor:
        key = (layer, group)
        if key in self.local:
            return x @ self.local[key]
        if key in self.blinded:
            return self._blinded(key, x)
        if key in self.clear:
            return self._offload(key, x.contiguous(), False, self.d_out[key])
        ob = self.obfuscated[key]
        y_obf = self._offload(key, x.contiguous(), False, ob.perm.numel())
        y = torch.empty_like(y_obf)
        y[:, ob.perm] = y_obf / ob.alpha
        return y
