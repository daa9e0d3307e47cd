"""``vllm serve`` with the enclave executor: logprobs over HTTP, unsupported parameters refused with a 400.

Completions (``logprobs: 2``) and chat (``logprobs: true, top_logprobs: 2``)
return the sampled token's logprob and the top two, computed in the enclave;
a request the enclave cannot honour (prompt logprobs, structured outputs) is
answered 400 with a message naming the parameter, and the server keeps
serving.
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, running_server

TENANT = {"x-pccguard-tenant": "alice"}
#: The executor is named by hand; its plan comes from here.
CONFIG = "profile: multi-tenant-baseline\nmitigations: {hybrid_executor_plan: all-enclave}\n"


@pytest.fixture(scope="module")
def server(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tiny_llama, tmp_path_factory.mktemp("serve-sampling"), CONFIG) as s:
        yield s


def _refused(server: Server, path: str, body: dict[str, Any]) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as info:
        server.post(path, body, TENANT)
    return info.value.code, json.loads(info.value.read())["error"]["message"]


def test_completion_logprobs(server: Server, tiny_llama: Path) -> None:
    body = {"model": str(tiny_llama), "prompt": [5, 17, 42, 99], "max_tokens": 3, "temperature": 0.0}
    answer = server.post("/v1/completions", body | {"logprobs": 2, "ignore_eos": True}, TENANT)
    logprobs = answer["choices"][0]["logprobs"]
    assert len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == 3
    for sampled, top in zip(logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True):
        assert len(top) == 2 and all(v <= 0.0 for v in top.values())
        assert sampled == pytest.approx(max(top.values()))  # greedy: the sampled token is the likeliest


def test_chat_top_logprobs(server: Server, tiny_llama: Path) -> None:
    body = {
        "model": str(tiny_llama),
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 3,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": 2,
    }
    content = server.post("/v1/chat/completions", body, TENANT)["choices"][0]["logprobs"]["content"]
    assert content
    for entry in content:
        assert len(entry["top_logprobs"]) == 2
        assert entry["logprob"] == pytest.approx(max(t["logprob"] for t in entry["top_logprobs"]))


def test_unsupported_parameters_get_400_and_the_server_keeps_serving(
    server: Server, tiny_llama: Path
) -> None:
    completion = {"model": str(tiny_llama), "prompt": [5, 17, 42], "max_tokens": 2, "temperature": 0.0}
    code, message = _refused(server, "/v1/completions", completion | {"prompt_logprobs": 1})
    assert code == 400, message
    assert "enclave executor" in message and "prompt_logprobs" in message
    chat = {
        "model": str(tiny_llama),
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 2,
        "response_format": {"type": "json_object"},
    }
    code, message = _refused(server, "/v1/chat/completions", chat)
    assert code == 400, message
    assert "structured_outputs" in message
    answer = server.post("/v1/completions", completion, TENANT)
    assert answer["usage"]["completion_tokens"] == 2
