"""Load a ``transformers`` LLaMA checkpoint and private LoRA adapters without ``transformers``.

Why not ``transformers`` here: this module runs inside the enclave, whose
measured code should stay small; the enclave reads ``config.json`` and
``*.safetensors`` directly. Shapes follow ``LlamaForCausalLM`` (``[out, in]``
weights, grouped-query attention, optional biases, tied embeddings).
LoRA adapters are read in the ``peft`` format (``adapter_config.json`` +
``adapter_model.safetensors``): ``ΔW = scaling · B·A`` on any projection.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from pccguard.enclave_runtime.errors import ModelFormatError
from pccguard.enclave_runtime.plan import LAYER_GROUPS


@dataclass(frozen=True)
class LlamaSpec:
    """The architecture numbers the decoder needs."""

    hidden: int
    intermediate: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    eps: float
    tie_embeddings: bool
    rope_type: str
    rope_theta: float
    rope_params: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> LlamaSpec:
        if cfg.get("model_type", "llama") != "llama":
            raise ModelFormatError(f"model_type {cfg.get('model_type')!r} is not llama")
        hidden = _int(cfg, "hidden_size")
        heads = _int(cfg, "num_attention_heads")
        rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        if not isinstance(rope, dict):
            raise ModelFormatError("rope parameters must be an object")
        rope_type = str(rope.get("rope_type", rope.get("type", "default")))
        if rope_type not in ("default", "llama3"):
            raise ModelFormatError(f"rope type {rope_type!r} is not supported (default, llama3)")
        try:
            theta = float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
            eps = float(cfg.get("rms_norm_eps", 1e-6))
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"bad rope_theta or rms_norm_eps: {exc}") from exc
        return cls(
            hidden=hidden,
            intermediate=_int(cfg, "intermediate_size"),
            n_layers=_int(cfg, "num_hidden_layers"),
            n_heads=heads,
            n_kv_heads=_int(cfg, "num_key_value_heads", heads),
            head_dim=_int(cfg, "head_dim", hidden // heads),
            vocab=_int(cfg, "vocab_size"),
            eps=eps,
            tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            rope_type=rope_type,
            rope_theta=theta,
            rope_params={k: float(v) for k, v in rope.items() if isinstance(v, int | float)},
        )

    def group_dims(self, group: str) -> tuple[int, int]:
        """``(d_in, d_out)`` of a fused linear group."""
        q = self.n_heads * self.head_dim
        kv = self.n_kv_heads * self.head_dim
        return {
            "qkv": (self.hidden, q + 2 * kv),
            "o": (q, self.hidden),
            "gate_up": (self.hidden, 2 * self.intermediate),
            "down": (self.intermediate, self.hidden),
            "lm_head": (self.hidden, self.vocab),
        }[group]

    def proj_slices(self, group: str) -> dict[str, slice]:
        """Column slice of each projection inside its fused group output."""
        q = self.n_heads * self.head_dim
        kv = self.n_kv_heads * self.head_dim
        if group == "qkv":
            return {"q_proj": slice(0, q), "k_proj": slice(q, q + kv), "v_proj": slice(q + kv, q + 2 * kv)}
        if group == "gate_up":
            n = self.intermediate
            return {"gate_proj": slice(0, n), "up_proj": slice(n, 2 * n)}
        name = {"o": "o_proj", "down": "down_proj", "lm_head": "lm_head"}[group]
        return {name: slice(0, self.group_dims(group)[1])}

    def inv_freq(self) -> torch.Tensor:
        """RoPE inverse frequencies as ``transformers`` computes them (default and llama3)."""
        dim = self.head_dim
        inv = 1.0 / (self.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        if self.rope_type == "llama3":
            factor = self.rope_params["factor"]
            low = self.rope_params["low_freq_factor"]
            high = self.rope_params["high_freq_factor"]
            old_ctx = self.rope_params["original_max_position_embeddings"]
            low_wl, high_wl = old_ctx / low, old_ctx / high
            wavelen = 2 * math.pi / inv
            scaled = torch.where(wavelen > low_wl, inv / factor, inv)
            smooth = (old_ctx / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = (wavelen >= high_wl) & (wavelen <= low_wl)
            inv = torch.where(medium, smoothed, scaled)
        return inv


def _int(cfg: dict[str, Any], key: str, default: int | None = None) -> int:
    """A positive integer config field (``None`` in the file means the default)."""
    value = cfg.get(key)
    if value is None:
        if default is None:
            raise ModelFormatError(f"config.json lacks {key}")
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelFormatError(f"config.json {key} must be a positive integer")
    return value


@dataclass
class LoraDelta:
    """``ΔW = scaling · B·A`` in ``[out, in]`` orientation; ``A: [r, in]``, ``B: [out, r]``."""

    a: torch.Tensor
    b: torch.Tensor
    scaling: float

    def dense(self) -> torch.Tensor:
        return (self.b.double() @ self.a.double() * self.scaling).float()


@dataclass
class LlamaWeights:
    """All tensors of one model, by ``transformers`` name, plus LoRA deltas by (layer, proj)."""

    spec: LlamaSpec
    tensors: dict[str, torch.Tensor]
    deltas: dict[tuple[int, str], LoraDelta] = field(default_factory=dict)
    adapter_tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def layer_weight(self, layer: int, proj: str) -> torch.Tensor:
        block = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
        return self.tensors[f"model.layers.{layer}.{block}.{proj}.weight"]

    def layer_bias(self, layer: int, proj: str) -> torch.Tensor | None:
        block = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
        return self.tensors.get(f"model.layers.{layer}.{block}.{proj}.bias")

    def group_weight(self, layer: int, group: str) -> torch.Tensor:
        """Public base weight of a fused group as ``[d_in, d_out]`` (row-vector convention)."""
        if group == "lm_head":
            return self.lm_head().t().contiguous()
        return torch.cat([self.layer_weight(layer, p).t() for p in LAYER_GROUPS[group]], dim=1).contiguous()

    def group_bias(self, layer: int, group: str) -> torch.Tensor | None:
        if group == "lm_head":
            return None
        parts = [self.layer_bias(layer, p) for p in LAYER_GROUPS[group]]
        if all(p is None for p in parts):
            return None
        return torch.cat(
            [
                p if p is not None else torch.zeros(self.layer_weight(layer, n).shape[0])
                for p, n in zip(parts, LAYER_GROUPS[group], strict=True)
            ]
        )

    def group_delta(self, layer: int, group: str) -> torch.Tensor | None:
        """Dense private delta of a group as ``[d_in, d_out]``, or ``None`` without LoRA."""
        names = ("lm_head",) if group == "lm_head" else LAYER_GROUPS[group]
        if not any((layer, p) in self.deltas for p in names):
            return None
        d_in, d_out = self.spec.group_dims(group)
        out = torch.zeros(d_in, d_out)
        for p, sl in self.spec.proj_slices(group).items():
            if (layer, p) in self.deltas:
                out[:, sl] = self.deltas[(layer, p)].dense().t()
        return out

    def embed(self) -> torch.Tensor:
        return self.tensors["model.embed_tokens.weight"]

    def lm_head(self) -> torch.Tensor:
        if "lm_head.weight" in self.tensors:
            return self.tensors["lm_head.weight"]
        return self.embed()

    def digests(self) -> dict[str, str]:
        """SHA-256 of every base and adapter tensor (name → hex), measured by the attestation."""
        out = {f"base/{k}": tensor_digest(v) for k, v in self.tensors.items()}
        out.update({f"adapter/{k}": tensor_digest(v) for k, v in self.adapter_tensors.items()})
        return dict(sorted(out.items()))


def tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}:{list(t.shape)}:".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def weights_root(digests: dict[str, str]) -> str:
    """One digest over the sorted (name, digest) list."""
    return hashlib.sha256(json.dumps(sorted(digests.items())).encode()).hexdigest()


def load_model_dir(path: str | Path) -> LlamaWeights:
    """Read ``config.json`` and every ``*.safetensors`` of a ``save_pretrained`` directory (float32)."""
    root = Path(path)
    try:
        cfg = json.loads((root / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read config.json: {exc}", where=str(root)) from exc
    spec = LlamaSpec.from_config(cfg)
    tensors: dict[str, torch.Tensor] = {}
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise ModelFormatError("no *.safetensors file", where=str(root))
    for f in files:
        tensors.update({k: v.float() for k, v in load_file(str(f)).items()})
    need = ["model.embed_tokens.weight", "model.norm.weight"]
    for layer in range(spec.n_layers):
        need += [
            f"model.layers.{layer}.input_layernorm.weight",
            f"model.layers.{layer}.post_attention_layernorm.weight",
        ]
    missing = [n for n in need if n not in tensors]
    if missing:
        raise ModelFormatError(f"missing tensors: {missing[:3]}", where=str(root))
    return LlamaWeights(spec, tensors)


_LORA_KEY = re.compile(
    r"^base_model\.model\.(?:model\.layers\.(\d+)\.(?:self_attn|mlp)\.)?(\w+?)\.lora_([AB])(?:\.default)?\.weight$"
)

_BASE_COPY = re.compile(r"^base_model\.model\.(.+)\.base_layer\.weight$")


def load_peft_adapter(weights: LlamaWeights, path: str | Path) -> None:
    """Attach a peft LoRA adapter to ``weights`` (in place); reject what would change semantics."""
    root = Path(path)
    try:
        cfg = json.loads((root / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read adapter_config.json: {exc}", where=str(root)) from exc
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ModelFormatError(f"peft_type {cfg.get('peft_type')!r} is not LORA", where=str(root))
    for flag in ("use_dora", "fan_in_fan_out"):
        if cfg.get(flag):
            raise ModelFormatError(f"{flag}=true is not supported", where=str(root))
    if cfg.get("bias", "none") != "none":
        raise ModelFormatError("LoRA bias training is not supported", where=str(root))
    tensors = load_file(str(root / "adapter_model.safetensors"))
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        copy = _BASE_COPY.match(key)
        if copy:  # peft saves tied embedding layers whole; accept only an unchanged copy
            name = copy.group(1) + ".weight"
            base = weights.lm_head() if name == "lm_head.weight" else weights.tensors.get(name)
            if base is None or base.shape != value.shape or not torch.equal(base, value.float()):
                raise ModelFormatError(f"adapter tensor {key} changes a base weight", where=str(root))
            continue
        m = _LORA_KEY.match(key)
        if not m:
            raise ModelFormatError(f"unexpected adapter tensor {key}", where=str(root))
        layer = int(m.group(1)) if m.group(1) is not None else -1
        proj = m.group(2)
        if layer >= weights.spec.n_layers or (layer < 0 and proj != "lm_head"):
            raise ModelFormatError(f"adapter tensor {key} does not match the model", where=str(root))
        pairs.setdefault((layer, proj), {})[m.group(3)] = value.float()
    alpha_pattern = cfg.get("alpha_pattern") or {}
    rank_pattern = cfg.get("rank_pattern") or {}
    for (layer, proj), ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ModelFormatError(f"adapter for layer {layer} {proj} lacks A or B", where=str(root))
        r = ab["A"].shape[0]
        key = f"model.layers.{layer}.{proj}" if layer >= 0 else proj
        alpha = next(
            (float(v) for k, v in alpha_pattern.items() if key.endswith(k) or k == proj),
            float(cfg.get("lora_alpha", r)),
        )
        expected_r = next(
            (int(v) for k, v in rank_pattern.items() if key.endswith(k) or k == proj), int(cfg.get("r", r))
        )
        if expected_r != r or ab["B"].shape[1] != r:
            raise ModelFormatError(f"adapter rank mismatch at layer {layer} {proj}", where=str(root))
        scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        weights.deltas[(layer, proj)] = LoraDelta(ab["A"], ab["B"], scaling)
    weights.adapter_tensors = {k: v.float() for k, v in sorted(tensors.items())}


def load_weights(model_dir: str | Path, adapter_dir: str | Path | None = None) -> LlamaWeights:
    weights = load_model_dir(model_dir)
    if adapter_dir is not None:
        load_peft_adapter(weights, adapter_dir)
    return weights
