"""Loading LLaMA checkpoints and peft adapters without transformers, and the in-enclave decoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from pccguard.enclave_runtime.accelerator import InProcessChannel
from pccguard.enclave_runtime.decoder import Decoder
from pccguard.enclave_runtime.errors import ModelFormatError
from pccguard.enclave_runtime.linear import GroupExecutor
from pccguard.enclave_runtime.model import load_weights
from pccguard.enclave_runtime.plan import all_enclave_plan, default_plan
from pccguard.enclave_runtime.synthetic import reference_greedy


def test_lora_deltas_match_peft(model_dirs: tuple[Path, Path], reference: Any) -> None:
    weights = load_weights(*model_dirs)
    assert len(weights.deltas) == 2 * 7
    layer = reference.base_model.model.model.layers[1].mlp.down_proj
    peft_delta = layer.get_delta_weight("default")  # [out, in]
    ours = weights.group_delta(1, "down")  # [in, out]
    assert ours is not None
    assert torch.allclose(ours.t(), peft_delta, atol=1e-6)
    delta = weights.group_delta(0, "qkv")
    assert delta is not None
    ratio = delta.norm() / weights.group_weight(0, "qkv").norm()
    assert 0.1 < float(ratio) < 1.0  # a material private change


@pytest.mark.parametrize("plan", [all_enclave_plan(), default_plan()], ids=lambda p: p.name)
def test_decoder_matches_transformers_in_process(
    model_dirs: tuple[Path, Path], reference: Any, plan: Any
) -> None:
    weights = load_weights(*model_dirs)
    linear = GroupExecutor(weights, plan, InProcessChannel(), timeout=10)
    decoder = Decoder(weights, linear, frozenset(linear.merged))
    prompt = [5, 17, 99, 3, 250]
    state = decoder.new_state(len(prompt) + 24)
    tokens = decoder.generate(prompt, 24, state)
    ref_tokens, ref_logits = reference_greedy(reference, prompt, 24)
    assert tokens == ref_tokens
    err = ((torch.stack(state.logits) - ref_logits).abs().amax(-1) / ref_logits.abs().amax(-1)).max()
    assert float(err) < (1e-5 if plan.name == "all-enclave" else 1e-3)


def test_adapter_format_errors(model_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    base, lora = model_dirs
    bad = tmp_path / "dora"
    shutil.copytree(lora, bad)
    cfg = json.loads((bad / "adapter_config.json").read_text())
    cfg["use_dora"] = True
    (bad / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="use_dora"):
        load_weights(base, bad)
    with pytest.raises(ModelFormatError, match=r"config.json"):
        load_weights(tmp_path / "missing")


def test_weight_digests_cover_the_adapter(model_dirs: tuple[Path, Path]) -> None:
    with_lora = load_weights(*model_dirs).digests()
    base_only = load_weights(model_dirs[0]).digests()
    assert set(base_only) < set(with_lora)
    assert any(k.startswith("adapter/") for k in with_lora)


class _Tampering:
    """An accelerator that answers one wrong element per product (a cheating GPU)."""

    def __init__(self) -> None:
        self.inner = InProcessChannel()

    def request(self, msg: Any, timeout: float | None) -> Any:
        reply = self.inner.request(msg, timeout)
        if reply.kind == "result" and msg.meta.get("group") == "down":
            reply.tensors["y"][0, 0] = (reply.tensors["y"][0, 0] + 1) % (2**48 - 59)
        return reply


def test_freivalds_catches_a_cheating_accelerator(model_dirs: tuple[Path, Path]) -> None:
    from pccguard.enclave_runtime.errors import IntegrityError
    from pccguard.enclave_runtime.plan import PartitionPlan

    weights = load_weights(*model_dirs)
    linear = GroupExecutor(weights, default_plan(), _Tampering(), timeout=10)
    decoder = Decoder(weights, linear, frozenset())
    with pytest.raises(IntegrityError, match="Freivalds"):
        decoder.generate([1, 2, 3], 2, decoder.new_state(8))
    # without the check the wrong product goes through unnoticed
    unchecked = PartitionPlan.from_dict({**default_plan().to_dict(), "integrity": "none"})
    linear = GroupExecutor(weights, unchecked, _Tampering(), timeout=10)
    Decoder(weights, linear, frozenset()).generate([1, 2, 3], 2, decoder.new_state(8))


@pytest.mark.filterwarnings("ignore:.*(tie_word_embeddings|save_embedding_layers).*:UserWarning")
def test_tied_embeddings_biases_and_lm_head_lora(tmp_path: Path) -> None:
    from pccguard.enclave_runtime import synthetic

    base = synthetic.make_llama(
        tmp_path / "base",
        hidden=64,
        intermediate=128,
        layers=1,
        heads=4,
        kv_heads=4,
        vocab=128,
        tie_embeddings=True,
        bias=True,
        seed=3,
    )
    lora = synthetic.make_lora(
        base, tmp_path / "lora", rank=2, targets=("q_proj", "down_proj", "lm_head"), seed=4
    )
    weights = load_weights(base, lora)
    assert weights.spec.tie_embeddings and (-1, "lm_head") in weights.deltas
    assert weights.group_bias(0, "qkv") is not None
    reference = synthetic.reference_model(base, lora)
    linear = GroupExecutor(weights, default_plan(), InProcessChannel(), timeout=10)
    decoder = Decoder(weights, linear, frozenset())
    state = decoder.new_state(20)
    tokens = decoder.generate([1, 2, 3, 4], 16, state)
    ref_tokens, ref_logits = reference_greedy(reference, [1, 2, 3, 4], 16)
    assert tokens == ref_tokens
    err = ((torch.stack(state.logits) - ref_logits).abs().amax(-1) / ref_logits.abs().amax(-1)).max()
    assert float(err) < 1e-3
