"""``python -m pccguard.enclave_runtime.tiny_model``: the servable model the walkthrough starts from.

Run as a user runs it (a subprocess): the directory has what ``vllm serve``
loads, the same seed gives the same weight bytes, and bad arguments are one
line on stderr with exit 2 and nothing written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND = [sys.executable, "-m", "pccguard.enclave_runtime.tiny_model"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=300, check=False)


def test_writes_a_model_directory_deterministically(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert _run(str(first), "--seed", "3").returncode == 0
    assert _run(str(second), "--seed", "3").returncode == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (first / name).is_file(), name
    config = json.loads((first / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 2
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    other = tmp_path / "c"
    assert _run(str(other), "--seed", "4").returncode == 0
    assert (other / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging directory left"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--hidden", "30"], "--hidden must be a multiple of 8"),
        (["--layers", "0"], "--layers must be between 1 and 32"),
        (["--seed", "-1"], "--seed must be between"),
        (["--hidden", "999999"], "--hidden must be between 8 and 4096"),
    ],
)
def test_bad_arguments_are_one_line_and_write_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "model"
    result = _run(str(out), *args)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    result = _run(str(out))
    assert result.returncode == 2 and "not an empty directory" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
