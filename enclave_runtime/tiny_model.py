"""Generate a small servable LLaMA directory locally: config, deterministic weights, a trained tokenizer.

Why: an end-to-end run of a serving engine needs a real model directory
(``config.json``, ``*.safetensors``, a tokenizer), and nothing may be
downloaded. The weights are seeded random tensors (the same seed gives the same
bytes on every machine); the tokenizer is a byte-level BPE trained with
``tokenizers`` on a short built-in text, so any input string can be encoded.

Usage: ``python -m pccguard.enclave_runtime.tiny_model OUTDIR [--seed N]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

#: Built-in training text for the tokenizer: enough distinct words for a few hundred merges.
CORPUS = """\
Private Cloud Compute extends the security of the device into the cloud.
A request is processed only for the user who sent it, and nothing is retained afterwards.
Stateless computation: personal data is used only to fulfil the request and is deleted when it is done.
Enforceable guarantees: the privacy properties hold because of the code that runs, not because of a promise.
No privileged runtime access: there is no shell, no debugger and no logging of user data.
Non-targetability: an attacker cannot steer one user's requests to a compromised node.
Verifiable transparency: researchers can inspect the software images that the nodes run.
The prefix cache stores keys and values of earlier prompts so that a later prompt with the same prefix is faster.
When the cache is shared across tenants, the time to first token reveals whether another tenant sent the prefix.
A tenant salt in the block hash keeps one tenant's cached blocks invisible to every other tenant.
The scheduler allocates blocks, the model runner writes keys and values, and freed blocks are zeroed.
The quick brown fox jumps over the lazy dog while the cat sleeps in the warm afternoon sun.
One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen.
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June.
The enclave holds the private weights, the attention state and every sampled token of a request.
"""

SPECIAL = ["<s>", "</s>", "<unk>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def train_tokenizer(out: Path, vocab_size: int) -> int:
    """Train and save a byte-level BPE tokenizer; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines() * 4, trainer=trainer)
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": 4096,
        "add_bos_token": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2) + "\n",
        encoding="utf-8",
    )
    return int(tok.get_vocab_size())


def make_weights(
    *, vocab: int, hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, seed: int
) -> dict[str, torch.Tensor]:
    """``LlamaForCausalLM`` tensors by name, from one seeded generator in a fixed order."""
    gen = torch.Generator().manual_seed(seed)
    head_dim = hidden // heads

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * 0.05

    def norm() -> torch.Tensor:  # away from 1 so a misplaced norm changes the output
        return torch.rand(hidden, generator=gen) + 0.5

    t: dict[str, torch.Tensor] = {"model.embed_tokens.weight": normal(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}"
        t[f"{p}.self_attn.q_proj.weight"] = normal(heads * head_dim, hidden)
        t[f"{p}.self_attn.k_proj.weight"] = normal(kv_heads * head_dim, hidden)
        t[f"{p}.self_attn.v_proj.weight"] = normal(kv_heads * head_dim, hidden)
        t[f"{p}.self_attn.o_proj.weight"] = normal(hidden, heads * head_dim)
        t[f"{p}.mlp.gate_proj.weight"] = normal(intermediate, hidden)
        t[f"{p}.mlp.up_proj.weight"] = normal(intermediate, hidden)
        t[f"{p}.mlp.down_proj.weight"] = normal(hidden, intermediate)
        t[f"{p}.input_layernorm.weight"] = norm()
        t[f"{p}.post_attention_layernorm.weight"] = norm()
    t["model.norm.weight"] = norm()
    t["lm_head.weight"] = normal(vocab, hidden)
    return {k: v.contiguous() for k, v in t.items()}


def make_tiny_llama(
    out: str | Path,
    *,
    seed: int = 0,
    vocab_target: int = 512,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 2048,
) -> Path:
    """Write the model directory and return its path."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    vocab = train_tokenizer(root, vocab_target)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "max_position_embeddings": max_positions,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": "float32",
    }
    (root / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (root / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 0, "eos_token_id": 1}, indent=2) + "\n", encoding="utf-8"
    )
    weights = make_weights(
        vocab=vocab,
        hidden=hidden,
        intermediate=intermediate,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        seed=seed,
    )
    save_file(weights, str(root / "model.safetensors"), metadata={"format": "pt"})
    return root


#: What the command accepts: small models only (the point is a fast local end-to-end run).
LIMITS = {"layers": (1, 32), "hidden": (8, 4096), "seed": (0, 2**63 - 1)}
HEADS = 4


def _problem(args: argparse.Namespace) -> str | None:
    for name, (lo, hi) in LIMITS.items():
        value = getattr(args, name)
        if not lo <= value <= hi:
            return f"--{name} must be between {lo} and {hi}, not {value}"
    if args.hidden % (2 * HEADS):
        return f"--hidden must be a multiple of {2 * HEADS} ({HEADS} heads with an even head size for RoPE)"
    out: Path = args.outdir
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return f"{out}: exists and is not an empty directory (nothing is overwritten)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Write the model directory, all or nothing: built beside ``OUTDIR``, then renamed into place."""
    import os
    import shutil
    import sys
    import tempfile

    parser = argparse.ArgumentParser(
        prog="python -m pccguard.enclave_runtime.tiny_model",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args(argv)
    problem = _problem(args)
    if problem is not None:
        print(f"tiny_model: error: {problem}", file=sys.stderr)
        return 2
    out: Path = args.outdir
    parent = out.resolve().parent
    if not parent.is_dir():
        print(f"tiny_model: error: {parent}: no such directory", file=sys.stderr)
        return 2
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        make_tiny_llama(staging, seed=args.seed, layers=args.layers, hidden=args.hidden, heads=HEADS)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
