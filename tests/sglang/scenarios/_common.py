"""Shared set-up for the scenario scripts: tiny model, resolved ServerArgs, plugin install.

Each scenario runs in its own process (``python scenario.py MODEL_DIR plugin|none``)
so that "with the plugin" and "without" never share patched SGLang code, and
prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch  # noqa: F401  (before regopy; see pccguard.adapters.sglang.facts)

#: A 2-layer LLaMA small enough for the CPU; weights are generated (load_format=dummy).
#: The one definition the tests, the scenarios and the benchmarks share.
TINY_LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "torch_dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
}

#: How SGLang's real ``Engine`` runs on a CPU-only machine.
CPU_ENGINE_KWARGS: dict[str, Any] = {
    "device": "cpu",
    "load_format": "dummy",
    "skip_tokenizer_init": True,
    "attention_backend": "torch_native",
    "sampling_backend": "pytorch",
    "model_impl": "transformers",
    "mem_fraction_static": 0.05,
    "log_level": "error",
    "disable_cuda_graph": True,
}


def write_tiny_model(path: Path) -> Path:
    """A model directory holding only the tiny config (weights are generated at load)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(TINY_LLAMA), encoding="utf-8")
    return path


def cpu_engine(model: str, **extra: Any) -> Any:
    """SGLang's real ``Engine`` on the CPU with the tiny model."""
    import sglang as sgl

    return sgl.Engine(model_path=model, **{**CPU_ENGINE_KWARGS, **extra})


def args() -> tuple[str, bool]:
    model, mode = sys.argv[1], sys.argv[2]
    assert mode in ("plugin", "none"), mode
    return model, mode == "plugin"


def server_args(model: str, *extra: str) -> Any:
    """Real, resolved SGLang ServerArgs for the tiny model on the CPU."""
    from sglang.srt.server_args import prepare_server_args

    sa = prepare_server_args(["--model-path", model, "--device", "cpu", "--load-format", "dummy", *extra])
    sa.resolve_once()
    return sa


def install_plugin(sa: Any) -> Any:
    """What SGLang's load_plugins() does in a scheduler process, then the startup decision."""
    from sglang.srt.plugins.hook_registry import HookRegistry

    from pccguard.adapters.sglang.runtime.startup import decide
    from pccguard.plugins.sglang import register

    register()
    HookRegistry.apply_hooks()
    return decide(sa)


def publish(sa: Any) -> None:
    """Publish the config namespaces the scheduler reads (as run_scheduler_process does)."""
    from sglang.srt.runtime_context import SpawnRanks
    from sglang.srt.runtime_context import publish as _publish

    _publish(sa, role="scheduler", ranks=SpawnRanks(0))


def report(result: dict[str, Any]) -> None:
    print(json.dumps(result, sort_keys=True), flush=True)


def wait_healthy(port: int, within_s: float = 300.0) -> bool:
    """Poll ``GET /health`` on loopback until the server answers 200 (False if it never does)."""
    import time
    import urllib.request

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False
