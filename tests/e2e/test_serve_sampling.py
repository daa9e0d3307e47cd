"""``vllm serve`` with the enclave executor: logprobs and structured outputs over HTTP, the rest a 400.

Completions (``logprobs: 2``) and chat (``logprobs: true, top_logprobs: 2``)
return the sampled token's logprob and the top two, computed in the enclave;
structured outputs (a regex, a JSON schema, a choice, OpenAI's
``response_format``) come back in their grammar, where the same requests
unconstrained do not; a request the enclave cannot honour (prompt logprobs)
is answered 400 with a message naming the parameter, and the server keeps
serving.
"""

from __future__ import annotations

import json
import re
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
    # JSON without free whitespace: a random model would otherwise fill max_tokens with it.
    compact = ("--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}')
    with running_server(tiny_llama, tmp_path_factory.mktemp("serve-sampling"), CONFIG, *compact) as s:
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
        "prompt_logprobs": 1,
    }
    code, message = _refused(server, "/v1/chat/completions", chat)
    assert code == 400, message
    assert "prompt_logprobs" in message
    answer = server.post("/v1/completions", completion, TENANT)
    assert answer["usage"]["completion_tokens"] == 2


REGEX = r"(yes|no)-[0-9]{2}"
SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "level": {"enum": [1, 2, 3]}},
    "required": ["ok", "level"],
    "additionalProperties": False,
}


def _valid(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"ok", "level"}
        and isinstance(value["ok"], bool)
        and value["level"] in (1, 2, 3)
    )


def _parses(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def test_structured_outputs_follow_their_grammar(server: Server, tiny_llama: Path) -> None:
    completion = {"model": str(tiny_llama), "prompt": "The enclave", "max_tokens": 12, "temperature": 0.0}

    def text(body: dict[str, Any]) -> str:
        return str(server.post("/v1/completions", completion | body, TENANT)["choices"][0]["text"])

    free = text({})
    assert not re.fullmatch(REGEX, free) and not _valid(_parses(free)), (
        "the control: unconstrained is neither"
    )
    assert re.fullmatch(REGEX, text({"structured_outputs": {"regex": REGEX}}))
    assert _valid(json.loads(text({"max_tokens": 40, "structured_outputs": {"json": SCHEMA}})))

    chat = {
        "model": str(tiny_llama),
        "messages": [{"role": "user", "content": "approve?"}],
        "max_tokens": 8,
        "temperature": 0.0,
    }

    def content(body: dict[str, Any]) -> str:
        return str(
            server.post("/v1/chat/completions", chat | body, TENANT)["choices"][0]["message"]["content"]
        )

    assert content({}) not in ("approve", "deny")
    assert content({"structured_outputs": {"choice": ["approve", "deny"]}}) in ("approve", "deny")
    schema_format = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": SCHEMA}}
    assert _valid(json.loads(content({"max_tokens": 60, "response_format": schema_format})))
