"""Random LLaMA checkpoints and peft LoRA adapters, generated locally (nothing is downloaded).

Used by the tests, the benchmark and the attack demonstrations. Host-side only:
it imports ``transformers`` and ``peft``, which the enclave never does.
"""

from __future__ import annotations

from pathlib import Path

import torch

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def describe_llama(
    path: str | Path,
    *,
    vocab: int = 512,
    max_positions: int = 1024,
    architectures: list[str] | None = None,
) -> Path:
    """Save a 2-layer LLaMA as ``config.json`` alone: enough for an engine that never loads weights.

    The engine tests and benchmarks build real schedulers and KV caches around
    this shape; ``architectures`` is named when a consumer checks it (the
    enclave executor serves LLaMA decoders only).
    """
    from transformers import LlamaConfig

    extra = {"architectures": architectures} if architectures else {}
    LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        **extra,
    ).save_pretrained(path)
    return Path(path)


def make_llama(
    path: str | Path,
    *,
    hidden: int = 64,
    intermediate: int = 160,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab: int = 256,
    seed: int = 0,
    init_range: float = 0.05,
    tie_embeddings: bool = False,
    bias: bool = False,
) -> Path:
    """Save a random ``LlamaForCausalLM`` (float32, safetensors) to ``path``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        max_position_embeddings=4096,
        initializer_range=init_range,
        tie_word_embeddings=tie_embeddings,
        attention_bias=bias,
        mlp_bias=bias,
    )
    model = LlamaForCausalLM(config).float().eval()
    with torch.no_grad():  # norms away from 1 so that a wrong norm placement shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.02)
    out = Path(path)
    model.save_pretrained(out, safe_serialization=True)
    return out


def make_lora(
    model_dir: str | Path,
    path: str | Path,
    *,
    rank: int = 4,
    alpha: float = 8.0,
    targets: tuple[str, ...] = DEFAULT_TARGETS,
    seed: int = 1,
    delta_scale: float = 0.3,
) -> Path:
    """Save a random peft LoRA adapter whose ``‖ΔW‖ ≈ delta_scale·‖W₀‖`` on each target."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM.from_pretrained(model_dir).float()
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(targets),
        lora_dropout=0.0,
        init_lora_weights=False,
        bias="none",
    )
    model = get_peft_model(base, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in model.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                w0 = module.base_layer.weight
                a = module.lora_A["default"].weight
                b = module.lora_B["default"].weight
                a.copy_(torch.randn(a.shape, generator=gen) / a.shape[1] ** 0.5)
                b.copy_(torch.randn(b.shape, generator=gen))
                delta = (b @ a) * module.scaling["default"]
                b.mul_(delta_scale * w0.norm() / delta.norm())
    out = Path(path)
    model.save_pretrained(out, safe_serialization=True)
    return out


def reference_model(model_dir: str | Path, adapter_dir: str | Path | None = None) -> torch.nn.Module:
    """The ``transformers`` reference (with the adapter applied by ``peft``), float32, eval mode."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir).float().eval()
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).eval()
    return model


def reference_greedy(
    model: torch.nn.Module, prompt: list[int], max_new: int
) -> tuple[list[int], torch.Tensor]:
    """Greedy decoding with the KV cache; returns tokens and the logits (on the CPU) that chose each one.

    Runs on whatever device the model's parameters are on, so the same reference
    serves as the unprotected GPU baseline.
    """
    with torch.no_grad():
        device = next(model.parameters()).device
        ids = torch.tensor([prompt], device=device)
        out = model(input_ids=ids, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1]
        tokens: list[int] = []
        all_logits = []
        for step in range(max_new):
            tok = int(torch.argmax(logits))
            tokens.append(tok)
            all_logits.append(logits.clone())
            if step == max_new - 1:
                break
            out = model(input_ids=torch.tensor([[tok]], device=device), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1]
        return tokens, torch.stack(all_logits).cpu()
