"""``pccguard scan`` on real files: every shape a canary can leave, chunk boundaries, errors, formats.

Each detector is shown detecting a planted canary and, on the same bytes
without it (or with a near miss), finding nothing. The CLI runs as a real
process where its exit status or its output file is the property.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pccguard.cli import main
from pccguard.scan.canaries import Canary, patterns, text_canary
from pccguard.scan.search import ScanResult, scan, scan_file
from tests.core.standin_engine import PROXY_VARS

CANARY = "pccguard-canary-7f3a9c"
IDS = (48213, 7, 30011, 912, 2)
SARIF_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


def _scan(path: Path, *canaries: Canary, chunk: int = 1 << 20) -> ScanResult:
    return scan([path], patterns(list(canaries)), chunk=chunk)


def _text() -> Canary:
    return text_canary("canary-1", CANARY)


def _ids() -> Canary:
    return Canary("canary-2", None, (IDS,))


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("codec", ["utf-8", "utf-16-le", "utf-16-be"])
def test_text_canary_is_found_in_each_encoding(tmp_path: Path, codec: str) -> None:
    log = tmp_path / "server.log"
    log.write_bytes("first line\nprompt: ".encode(codec) + CANARY.encode(codec) + "\nlast\n".encode(codec))
    found = _scan(log, _text())
    assert [(f.encoding, f.canary) for f in found.findings] == [(codec, "canary-1")]
    assert found.exit_code == 1
    log.write_bytes("first line\nprompt: pccguard-canary-7f3a9d\n".encode(codec))  # one character off
    assert _scan(log, _text()).exit_code == 0


def test_offset_and_line_point_at_the_canary(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    head = b"one\ntwo\nthree: "
    log.write_bytes(head + CANARY.encode() + b" tail\n")
    (finding,) = _scan(log, _text()).findings
    assert (finding.offset, finding.length, finding.line) == (len(head), len(CANARY), 3)


def test_each_of_several_hits_gets_its_own_line(tmp_path: Path) -> None:
    log = tmp_path / "many.log"
    lines = ["start", CANARY, "a", "b", f"x {CANARY} y {CANARY}", "end"]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for chunk in (1 << 20, 16, 5):
        assert [f.line for f in _scan(log, _text(), chunk=chunk).findings] == [2, 5, 5], chunk


@pytest.mark.parametrize(("fmt", "encoding"), [("<i", "token-ids-int32"), ("<q", "token-ids-int64")])
def test_token_ids_are_found_in_a_tensor_dump(tmp_path: Path, fmt: str, encoding: str) -> None:
    store = tmp_path / "offload" / "chunk-0.bin"
    store.parent.mkdir()
    noise = [5, 9, 11]
    store.write_bytes(b"".join(struct.pack(fmt, i) for i in [*noise, *IDS, *noise]))
    found = _scan(tmp_path, _ids())
    assert {f.encoding for f in found.findings} == {encoding}
    store.write_bytes(b"".join(struct.pack(fmt, i) for i in [*noise, *IDS[:-1], 3, *noise]))
    assert _scan(tmp_path, _ids()).exit_code == 0, "control: the sequence with one id changed"


@pytest.mark.parametrize(
    ("text", "hits"),
    [
        ("tokens=[1, 48213, 7, 30011, 912, 2, 5]", 1),
        ('{"token_ids": [48213,7,30011,912,2]}', 1),
        ("48213 7 30011 912 2\n", 1),
        ("[48213, 48213, 7, 30011, 912, 2]", 1),  # a false start just before the real one
        ("[148213, 7, 30011, 912, 2]", 0),  # another id that ends in the canary's first
        ("[48213, 7, 30011, 912, 21]", 0),  # and one that starts with its last
        ("[48213, 7, 30011, 2]", 0),
    ],
)
def test_printed_id_lists(tmp_path: Path, text: str, hits: int) -> None:
    capture = tmp_path / "kv-events.jsonl"
    capture.write_text(text, encoding="utf-8")
    found = _scan(capture, _ids())
    assert [f.encoding for f in found.findings] == ["token-ids-text"] * hits


# --------------------------------------------------------------------------- streaming


def test_a_canary_across_a_chunk_boundary_is_found_once(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 100 + CANARY.encode() + b"y" * 100)
    for chunk in (1, 3, 7, 13, len(CANARY), 101, 4096):
        found = _scan(path, _text(), chunk=chunk)
        assert [(f.offset, f.encoding) for f in found.findings] == [(100, "utf-8")], chunk


def test_an_id_list_cut_at_a_chunk_end_waits_for_the_next_chunk(tmp_path: Path) -> None:
    """``48213, 7, 30011, 912, 2`` followed by ``5`` is the id 25, not the canary: whatever the chunking."""
    text = b"[48213, 7, 30011, 912, 25]"
    path = tmp_path / "cut.txt"
    path.write_bytes(text)
    cut = text.index(b"5]")  # a chunk ends right after the "2"
    for chunk in (cut, cut - 1, cut + 1, 1, 2):
        assert _scan(path, _ids(), chunk=chunk).findings == [], chunk
    path.write_bytes(text[:cut] + b"]")  # positive control: the list really ends there
    assert len(_scan(path, _ids(), chunk=cut).findings) == 1


@settings(max_examples=60, deadline=None)
@given(
    before=st.binary(max_size=80),
    after=st.binary(max_size=80),
    chunk=st.integers(min_value=1, max_value=64),
    copies=st.integers(min_value=1, max_value=3),
)
def test_streaming_finds_what_a_whole_file_search_finds(
    tmp_path_factory: pytest.TempPathFactory, before: bytes, after: bytes, chunk: int, copies: int
) -> None:
    data = (before + CANARY.encode() + after) * copies
    path = tmp_path_factory.mktemp("stream") / "f.bin"
    path.write_bytes(data)
    expected, start = [], data.find(CANARY.encode())
    while start != -1:
        expected.append(start)
        start = data.find(CANARY.encode(), start + 1)
    result = ScanResult()
    scan_file(path, [p for p in patterns([_text()]) if p.encoding == "utf-8"], result, chunk)
    assert [f.offset for f in result.findings] == expected
    assert result.bytes == len(data)


# --------------------------------------------------------------------------- what cannot be read


def test_a_missing_path_is_an_error_not_clean(tmp_path: Path) -> None:
    good = tmp_path / "clean.log"
    good.write_text("nothing here\n", encoding="utf-8")
    result = scan([good, tmp_path / "missing.log"], patterns([_text()]))
    assert result.files == 1 and result.exit_code == 2
    assert result.errors == [f"{tmp_path / 'missing.log'}: cannot read: No such file or directory"]


def test_links_and_fifos_inside_a_tree_are_skipped_and_named_ones_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    outside = tmp_path / "outside.log"
    outside.write_text(CANARY, encoding="utf-8")
    (tree / "link.log").symlink_to(outside)
    os.mkfifo(tree / "pipe")
    result = scan([tree], patterns([_text()]))
    assert result.exit_code == 0 and result.findings == []
    assert sorted(result.skipped) == [f"{tree / 'link.log'} (link)", f"{tree / 'pipe'} (not a regular file)"]
    named = scan([tree / "pipe"], patterns([_text()]))
    assert named.exit_code == 2 and "not a regular file or a directory" in named.errors[0]


# --------------------------------------------------------------------------- the command


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pccguard.cli", "scan", *argv], capture_output=True, text=True, timeout=120
    )


def test_exit_status_is_0_clean_1_found_2_error(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    log.write_text(f"INFO prompt={CANARY!r}\n", encoding="utf-8")
    found = _run(str(log), "--canary", CANARY)
    assert found.returncode == 1 and "FOUND: 1 occurrence" in found.stdout and "canary-1" in found.stdout
    log.write_text("INFO request_id=1 tokens=12\n", encoding="utf-8")
    clean = _run(str(log), "--canary", CANARY)
    assert clean.returncode == 0 and "clean: no canary found" in clean.stdout
    missing = _run(str(log), str(tmp_path / "gone"), "--canary", CANARY)
    assert missing.returncode == 2 and "ERROR" in missing.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give at least one --canary TEXT, --canary-file FILE or --canary-ids IDS"),
        (["--canary", "short"], "--canary: canary 'short' is shorter than 8 characters"),
        (["--canary-ids", "1,2,x,4"], "--canary-ids: token ids must be integers"),
        (["--canary-ids", "1,2,3"], "--canary-ids: a token canary needs at least 4 ids, got 3"),
        (["--canary-ids", "1,2,3,-4"], "--canary-ids: token ids must be between 0 and 2**63 - 1"),
        (["--canary", CANARY, "--chunk-mib", "0"], "--chunk-mib: must be between 1 and 1024"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    log = tmp_path / "a.log"
    log.write_text(CANARY, encoding="utf-8")
    out = tmp_path / "report.json"
    assert main(["scan", str(log), "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pccguard: error: {message}" + err[0].partition(message)[2]]
    assert not out.exists(), "no partial output file"


def test_the_output_may_not_be_a_scanned_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "a.log"
    log.write_text(CANARY, encoding="utf-8")
    assert main(["scan", str(log), "--canary", CANARY, "-o", str(log)]) == 2
    assert "refusing to overwrite it" in capsys.readouterr().err
    assert log.read_text(encoding="utf-8") == CANARY


def test_a_tokenizer_needs_its_package_or_a_loadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "a.log"
    log.write_text(CANARY, encoding="utf-8")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["scan", str(log), "--canary", CANARY, "--tokenizer", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("tokenizers' package" in err or "cannot load the tokenizer" in err)


# --------------------------------------------------------------------------- formats


def test_json_report_names_findings_but_never_the_canary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "a.log"
    log.write_text(f"x\n{CANARY}\n", encoding="utf-8")
    out = tmp_path / "scan.json"
    assert (
        main(
            [
                "scan",
                str(log),
                "--canary",
                CANARY,
                "--canary-ids",
                "48213,7,30011,912",
                "--format",
                "json",
                "-o",
                str(out),
            ]
        )
        == 1
    )
    text = out.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert CANARY not in text
    assert doc["outcome"] == "found" and doc["scanned"] == {"files": 1, "bytes": len(CANARY) + 3}
    assert doc["findings"] == [
        {
            "path": str(log),
            "offset": 2,
            "length": len(CANARY),
            "line": 2,
            "canary": "canary-1",
            "encoding": "utf-8",
        }
    ]
    assert [c["label"] for c in doc["canaries"]] == ["canary-1", "canary-2"]


def test_sarif_report_is_valid_and_locates_each_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = json.loads(SARIF_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    log = tmp_path / "a.log"
    log.write_text(f"x\n{CANARY}\n", encoding="utf-8")
    for paths, code in (([log], 1), ([log, tmp_path / "gone"], 2)):
        assert main(["scan", *map(str, paths), "--canary", CANARY, "--format", "sarif"]) == code
        text = capsys.readouterr().out
        sarif = json.loads(text)
        assert sorted(e.message for e in validator.iter_errors(sarif)) == []
        assert CANARY not in text
        run = sarif["runs"][0]
        (result,) = run["results"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert (result["ruleId"], region) == (
            "PCC-SCAN-001",
            {"startLine": 2, "byteOffset": 2, "byteLength": 22},
        )
        assert run["invocations"][0]["executionSuccessful"] is (code == 1)


# --------------------------------------------------------------------------- planted through a live server


def test_a_canary_planted_by_probe_is_found_in_a_prompt_log_and_not_elsewhere(
    engine_factory: Any, tmp_path: Path
) -> None:
    """``pccguard probe --plant`` through a real socket, then ``pccguard scan --canary-file``.

    The stand-in server logs prompts (as ``--log-requests`` would); the control
    directory holds only a log without prompts.
    """
    logged = tmp_path / "logged"
    quiet = tmp_path / "quiet"
    logged.mkdir()
    quiet.mkdir()
    (quiet / "audit.log").write_text('{"kind": "cache_salt_applied", "count": 1}\n', encoding="utf-8")
    engine = engine_factory("per_tenant", prompt_log=logged / "requests.log")
    canary_file = tmp_path / "canary.txt"
    planted = _probe(engine.base, "--model", "m", "--victim-tenant", "alice", "--plant", str(canary_file))
    assert planted.returncode == 0, planted.stderr
    canary = canary_file.read_text(encoding="utf-8").strip()
    assert canary.startswith("pccguard-canary-") and len(canary) == len("pccguard-canary-") + 32
    assert canary not in planted.stdout + planted.stderr, "the canary goes into the file only"
    assert [s.tenant for s in engine.seen] == ["alice"]
    found = _run(str(logged), "--canary-file", str(canary_file), "--format", "json")
    assert found.returncode == 1 and json.loads(found.stdout)["findings"][0]["path"] == str(
        logged / "requests.log"
    )
    clean = _run(str(quiet), "--canary-file", str(canary_file))
    assert clean.returncode == 0, "control: a log without prompts"


def test_a_failed_plant_writes_no_canary_file(engine_factory: Any, tmp_path: Path) -> None:
    engine = engine_factory("per_tenant")
    engine.kill()
    canary_file = tmp_path / "canary.txt"
    failed = _probe(engine.base, "--model", "m", "--victim-tenant", "alice", "--plant", str(canary_file))
    assert failed.returncode == 2 and "the canary was not planted: request failed" in failed.stderr
    assert failed.stderr.count("\n") == 1 and not canary_file.exists()
    no_identity = _probe(engine.base, "--model", "m", "--plant", str(canary_file))
    assert no_identity.returncode == 2 and "the victim needs an identity" in no_identity.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# only a comment\n\n", "the canary file holds no canary"),
        (b"\xff\xfe", "cannot read the canary file: not UTF-8 text"),
    ],
)
def test_a_bad_canary_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, message: str
) -> None:
    path = tmp_path / "canaries.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    assert main(["scan", str(tmp_path), "--canary-file", str(path)]) == 2
    assert capsys.readouterr().err == f"pccguard: error: {path}: {message}\n"


def _probe(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    return subprocess.run(
        [sys.executable, "-m", "pccguard.cli", "probe", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
