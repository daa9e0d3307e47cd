"""Scenario: vLLM's ``LLM`` with its engine core in a process started by ``spawn``.

``python engine_process.py MODEL_DIR CONFIG MODE``, run from the repository root:

* ``residue`` -- the start's self-tests are read back from the engine-core
  process; residue is then planted in every block on the worker, and three
  requests are sent one after another: what each finished with is reported;
* ``skip_layer`` -- the CPU zeroer leaves the last KV tensor out, patched at
  import so that it holds in the spawned engine-core process too (``spawn``
  re-imports this script there); the start must fail.

With ``spawn`` the engine-core process loads the plugin from inside
``EngineCore.__init__``: this is the start path a user on a GPU takes (vLLM
forces ``spawn`` once CUDA is initialised). Prints one JSON object on its last
stdout line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ["VLLM_WORKER_MULTIPROC_METHOD"] = "spawn"
os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"

from tests.cpu_vllm import configure_environment

configure_environment()
os.environ["PCCGUARD_CONFIG"] = sys.argv[2]
MODE = sys.argv[3]
#: Longer than the sampling interval the tests configure.
SETTLE_S = 0.5

from vllm.v1.engine.core import EngineCore  # noqa: E402


def _selftests(self: Any) -> list[dict[str, Any]]:
    """What the engine-core process proved at start (read there, sent back as plain data)."""
    outcome = getattr(self.scheduler, "pccguard_selftests", None)
    records = [] if outcome is None else outcome.records
    return [{"mitigation": r.mitigation, "passed": r.passed, "blocks": r.blocks} for r in records]


EngineCore.pccguard_scenario_selftests = _selftests  # type: ignore[attr-defined]

if MODE == "skip_layer":
    import ctypes

    from pccguard.adapters.vllm.runtime.worker import CpuBlockZeroer

    def _skip_last_tensor(self: Any, block_ids: list[int]) -> None:
        for base, stride, nbytes, _count in self.spans[:-1]:
            for block_id in block_ids:
                ctypes.memset(base + int(block_id) * stride, 0, nbytes)

    CpuBlockZeroer.__call__ = _skip_last_tensor  # type: ignore[method-assign]


def main() -> None:
    from vllm import LLM, SamplingParams

    from tests.cpu_vllm import tenant_token
    from tests.vllm.support import ENGINE_ARGS

    try:
        llm = LLM(sys.argv[1], skip_tokenizer_init=True, **ENGINE_ARGS)
    except Exception as exc:
        print(json.dumps({"started": False, "error": f"{type(exc).__name__}: {exc}"}))
        return
    if MODE != "residue":
        params = SamplingParams(max_tokens=2, detokenize=False)
        try:
            out = llm.generate([{"prompt_token_ids": [11, 12, 13]}], params, use_tqdm=False)
            print(json.dumps({"started": True, "served": [o.outputs[0].finish_reason for o in out]}))
        except Exception as exc:
            print(json.dumps({"started": True, "error": f"{type(exc).__name__}: {exc}"}))
        return
    client = llm.llm_engine.engine_core
    selftests = client.call_utility("pccguard_scenario_selftests")
    planted = llm.collective_rpc("plant_residue", args=(5,))
    time.sleep(SETTLE_S)  # the next step's sample is due: the first request is the one that samples
    params = SamplingParams(max_tokens=2, detokenize=False)
    finished = []
    for n in range(3):
        prompt = {"prompt_token_ids": [11 + n, 12, 13, 14, 15], "cache_salt": tenant_token("a")}
        (out,) = llm.generate([prompt], params, use_tqdm=False)
        finished.append(out.outputs[0].finish_reason)
    # The engine-core utility pccguard adds, called across the process boundary as the API server calls it.
    counters = client.call_utility("pccguard_counters")
    report = {"started": True, "selftests": selftests, "planted": planted, "finished": finished}
    print(json.dumps({**report, "counters": counters}))


if __name__ == "__main__":
    main()
