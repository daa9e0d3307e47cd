"""``vllm serve`` whose engine-core process is started by ``spawn`` (what vLLM forces once CUDA is up).

The engine-core process then loads the plugin from inside ``EngineCore.__init__``;
its self-tests must still run there, before it reports ready, and the server
must serve a tenant's request afterwards. The same server started by ``fork``
is every other test in this directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import psutil

from tests.e2e.server import running_server

TENANT = {"x-pccguard-tenant": "alice"}
CONFIG = "profile: multi-tenant-baseline\nmitigations: {hybrid_executor_plan: default}\n"


def test_a_spawned_engine_core_proves_itself_before_the_server_serves(
    tiny_llama: Path, tmp_path: Path
) -> None:
    env = {"VLLM_WORKER_MULTIPROC_METHOD": "spawn", "VLLM_LOGGING_LEVEL": "INFO"}
    with running_server(tiny_llama, tmp_path, CONFIG, env=env) as server:
        children = psutil.Process(server.proc.pid).children(recursive=True)
        spawned = [c for c in children if "multiprocessing.spawn" in " ".join(c.cmdline())]
        assert spawned, "the engine core was not started by spawn: this test would prove nothing"
        body = {"model": str(tiny_llama), "prompt": [7, 300, 41, 99], "max_tokens": 3, "ignore_eos": True}
        answer = server.post("/v1/completions", body, TENANT)
        log = server.log.read_text(encoding="utf-8", errors="replace")
    assert answer["usage"]["completion_tokens"] == 3
    proven = [line for line in log.splitlines() if re.search(r"EngineCore.*self-test\(s\) passed", line)]
    assert proven, "the spawned engine core logged no passed self-tests:\n" + log[-3000:]
    assert "scrub_freed_kv" in proven[0] and "prefix_cache_ttl" in proven[0], proven[0]
    started = log.index(proven[0])
    assert "Application startup complete" in log[started:], "the self-tests ran before the server listened"
