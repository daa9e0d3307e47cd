"""Scenario: residue sampling while serving, in SGLang's real scheduler.

``python residue_sampling.py MODEL_DIR plugin|none plant|clean``: starts SGLang's real
``Engine`` on the CPU. With ``plant``, each scheduler process writes data into
every free page of every K/V buffer after ``Scheduler.__init__`` -- what a free
path that skipped the scrub would leave -- and reads it back with the
sampler's own reader (the positive control, reported through the ready
handshake). The engine then idles past the sampling interval and serves one
request; the report says whether it was served or refused and with what.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from typing import Any

from _common import cpu_engine, report

PLUGIN = sys.argv[2] == "plugin"
PLANT = len(sys.argv) > 3 and sys.argv[3] == "plant"
#: Where the scheduler processes write the audit events they emit (set once, inherited by them).
EVENTS = os.environ.setdefault("PCCGUARD_SCENARIO_EVENTS", tempfile.mkstemp(prefix="residue-events-")[1])


def plant_after_init() -> None:
    from sglang.srt.managers import scheduler as module

    init, info = module.Scheduler.__init__, module.Scheduler.get_init_info

    def planted_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        import torch

        from pccguard.adapters.sglang.runtime.residue import dirty_pages, free_pages
        from pccguard.adapters.sglang.runtime.selftest import kv_tensors

        allocator = self.token_to_kv_pool_allocator
        size = max(1, int(allocator.page_size))
        free = [int(p) for p in free_pages(allocator)]
        # Every free page, so the first sample finds residue whichever pages it draws.
        pages = torch.tensor(free, dtype=torch.int64)
        slots = (pages[:, None] * size + torch.arange(size)[None, :]).reshape(-1)
        for _name, tensor in kv_tensors(allocator.get_kvcache()):
            tensor.view(torch.uint8)[slots] = 0x5A
        from pccguard.adapters.sglang.runtime.state import STATE

        def to_file(event: Any) -> None:
            with open(EVENTS, "a", encoding="utf-8") as out:
                out.write(json.dumps(event.model_dump(mode="json", exclude_none=True)) + "\n")

        STATE.audit.sinks.append(to_file)
        self._pccguard_planted = {"pages": len(free), "read_back": len(dirty_pages(allocator, free[:8]))}

    def reported_info(self: Any) -> dict[str, Any]:
        return {**info(self), "planted": getattr(self, "_pccguard_planted", None)}

    module.Scheduler.__init__ = planted_init
    module.Scheduler.get_init_info = reported_info


if PLANT:
    plant_after_init()


def main() -> None:
    from pccguard.adapters.sglang.runtime.salt import tenant_scope

    engine = cpu_engine(sys.argv[1], random_seed=0)
    try:
        info = engine.get_server_info()
        time.sleep(1.5)  # idle past the sampling interval: the scheduler samples in on_idle
        prompt = {"input_ids": [11, 12, 13, 14, 15, 16, 17, 18], "sampling_params": {"max_new_tokens": 2}}
        with tenant_scope("alice") if PLUGIN else contextlib.nullcontext():
            try:
                out = engine.generate(**prompt)
                finish = out["meta_info"].get("finish_reason") or {}
                result = {"served": finish.get("type") != "abort", "finish": finish}
            except Exception as exc:  # SGLang raises an abort as an error in some releases
                result = {"served": False, "error": f"{type(exc).__name__}: {exc}"}
        # What pccguard's metrics route reads from each scheduler: its internal-state answer.
        states = engine.get_server_info()["internal_states"]
        result["counters"] = [state.get("pccguard_counters") for state in states]
    finally:
        engine.shutdown()
    with open(EVENTS, encoding="utf-8") as events:
        kinds = [json.loads(line) for line in events if line.strip()]
    residue = [e for e in kinds if e.get("kind") == "residue_found"]
    report({**result, "planted": info.get("planted"), "residue_events": residue})


if __name__ == "__main__":
    main()
