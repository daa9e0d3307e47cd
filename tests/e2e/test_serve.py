"""``vllm serve`` with the enclave executor on a CPU-only machine, the pccguard plugin active.

Greedy completions over the OpenAI API equal the enclave runtime's reference
for the same model and plan; chat and streaming answer too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pccguard.enclave_runtime.plan import default_plan
from tests.e2e.server import Server, running_server
from tests.e2e.support import reference

TENANT = {"x-pccguard-tenant": "alice"}
#: The executor is named by hand; its plan comes from here.
CONFIG = "profile: multi-tenant-baseline\nmitigations: {hybrid_executor_plan: default}\n"


@pytest.fixture(scope="module")
def server(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tiny_llama, tmp_path_factory.mktemp("serve"), CONFIG) as s:
        yield s


def test_greedy_completions_equal_reference(server: Server, tiny_llama: Path) -> None:
    rng = random.Random(5)
    prompts = [[rng.randrange(3, 500) for _ in range(n)] for n in (6, 23, 40)]
    want = reference(tiny_llama, default_plan(), prompts, 5)
    got = []
    for p in prompts:
        body = {
            "model": str(tiny_llama),
            "prompt": p,
            "max_tokens": 5,
            "temperature": 0.0,
            "ignore_eos": True,
            "return_token_ids": True,
        }
        answer = server.post("/v1/completions", body, TENANT)
        got.append(answer["choices"][0]["token_ids"])
    assert got == want


def test_chat_answers(server: Server, tiny_llama: Path) -> None:
    body = {
        "model": str(tiny_llama),
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 4,
        "temperature": 0.0,
    }
    answer = server.post("/v1/chat/completions", body, TENANT)
    assert answer["choices"][0]["finish_reason"] in ("length", "stop")
    assert answer["usage"]["completion_tokens"] >= 1


def test_streamed_completion_equals_the_reference(server: Server, tiny_llama: Path) -> None:
    prompt = [7, 300, 41, 99, 250, 18, 3, 77]
    want = reference(tiny_llama, default_plan(), [prompt], 6)[0]
    body = {
        "model": str(tiny_llama),
        "prompt": prompt,
        "max_tokens": 6,
        "temperature": 0.0,
        "ignore_eos": True,
        "return_token_ids": True,
    }
    events = server.stream("/v1/completions", body, TENANT)
    tokens = [t for e in events for c in e.get("choices", []) for t in (c.get("token_ids") or [])]
    assert len([e for e in events if e.get("choices")]) >= 2, "the answer arrived in several chunks"
    assert tokens == want


def test_request_without_tenant_is_refused(server: Server, tiny_llama: Path) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as info:
        server.post("/v1/completions", {"model": str(tiny_llama), "prompt": "hi", "max_tokens": 1})
    assert info.value.code == 401


def test_metrics_carry_no_hit_oracle(server: Server) -> None:
    """PCC-T-011: the served /metrics lose the series that reveal prefix-cache hits, and keep the rest."""
    text = server.get_text("/metrics")
    assert "vllm:num_requests_running" in text
    assert "vllm:prefix_cache_hits" not in text and "vllm:prompt_tokens_cached" not in text
