"""Start-time self-test cost on vLLM's real EngineCore: each mitigation's check against the engine's own start.

Starts vLLM 0.33's real ``EngineCore`` with the executor vLLM and the plugin
resolve (a tiny generated LLaMA with weights; under the multi-tenant baseline
with the model's privacy undeclared that is pccguard's enclave executor, and
scrub, salts and TTL are installed), several times, and prints the engine's
own start time, the self-tests' time, the budget (2 s or 2% of the start,
whichever is larger) and each check's time.

    VLLM_TARGET_DEVICE=cpu python bench/vllm_selftest_time.py [--starts 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

import torch  # noqa: F401  (before regopy: see tests/cpu_vllm.py)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table, selftest_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()

    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.engine.core import EngineCore
    from vllm.v1.executor.abstract import Executor

    from pccguard.enclave_runtime.tiny_model import make_tiny_llama
    from pccguard.plugins.vllm import register

    tmp = Path(tempfile.mkdtemp(prefix="pccguard-bench-"))
    model = make_tiny_llama(tmp / "model", seed=0)
    config = tmp / "pccguard.yaml"
    config.write_text("profile: multi-tenant-baseline\n", encoding="utf-8")
    os.environ["PCCGUARD_CONFIG"] = str(config)
    register()

    starts, tests, per = [], [], {}
    for _ in range(args.starts):
        began = time.perf_counter()
        engine_args = EngineArgs(model=str(model), enable_prefix_caching=True, max_model_len=512)
        vllm_config = engine_args.create_engine_config()
        engine = EngineCore(vllm_config, Executor.get_class(vllm_config), log_stats=False)
        total = time.perf_counter() - began
        outcome = engine.scheduler.pccguard_selftests
        starts.append(total - outcome.seconds)
        tests.append(outcome.seconds)
        for record in outcome.records:
            per.setdefault(record.mitigation, []).append(record.seconds)
        engine.shutdown()

    start_s = statistics.median(starts)
    test_s = statistics.median(tests)
    rows = [
        ["engine start (without self-tests)", f"{start_s:.2f} s", ""],
        *selftest_rows(start_s, test_s, per),
    ]
    print_table(f"vLLM start-time self-tests, median of {args.starts} starts", ["", "time", "note"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
