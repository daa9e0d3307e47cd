"""pccguard's transparency log on real files: growth across tile levels, proofs, tampering, one writer, kills.

Every check reads the log back from disk: the tiles against the entries, the
root against an in-memory RFC 6962 tree of the same entries, every inclusion
and consistency proof with the verifiers the published vectors test
(``test_merkle.py``). Crash safety is tested by killing a real writer process
at random moments mid-append.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pccguard.cli import main
from pccguard.transparency import merkle, tiles
from pccguard.transparency.log import LOCK, LogError, TransparencyLog, load_signer
from pccguard.transparency.note import Signer


def _entry(i: int) -> bytes:
    return f"entry-{i}".encode()


def _new(tmp_path: Path) -> tuple[TransparencyLog, Signer]:
    log = TransparencyLog.init(tmp_path / "log", "pccguard.test/log")
    return log, load_signer(log.root, None)


def test_tile_paths_follow_the_layout() -> None:
    assert tiles.encode_index(0) == "000" and tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.tile_for(1000, 0, 999).path == "tile/0/003.p/232"
    assert tiles.tile_for(1024, 0, 1000).path == "tile/0/003"
    assert tiles.tile_for(70000, 1, 5).path == "tile/1/000"  # 273 level-1 hashes: one full tile
    assert tiles.tile_for(70000, 1, 260).path == "tile/1/001.p/17"
    assert tiles.tile_for(70000, None, 0).path == "tile/entries/000"


def test_the_log_grows_across_tile_levels_and_every_proof_verifies(tmp_path: Path) -> None:
    log, signer = _new(tmp_path)
    leaves: list[bytes] = []
    seen: list[tuple[int, bytes]] = []
    rng = random.Random(0)
    for batch in (
        1,
        255,
        1,
        300,
        65000,
        100,
    ):  # a partial tile, a full one, level 1 filling, level 2 appearing
        start = len(leaves)
        point = log.append([_entry(i) for i in range(start, start + batch)], signer)
        leaves += [merkle.leaf_hash(_entry(i)) for i in range(start, start + batch)]
        assert point.size == len(leaves) and point.root == merkle.root(leaves)
        assert log.verify() == point
        for index in {0, start, len(leaves) - 1, rng.randrange(len(leaves))}:
            proof = log.prove(index)
            merkle.verify_inclusion(index, point.size, proof.leaf_hash, proof.path, point.root)
            assert proof.leaf_hash == leaves[index]
        for size1, root1 in seen:
            merkle.verify_consistency(
                size1, point.size, log.consistency(size1, point.size), root1, point.root
            )
        seen.append((point.size, point.root))
    assert (log.root / "tile/2/000.p/1").is_file()  # 65657 leaves: one level-2 hash
    assert log.entries(point.size, 65535, 65537) == [_entry(65535), _entry(65536)]


def test_a_tampered_tile_entry_or_checkpoint_is_refused(tmp_path: Path) -> None:
    log, signer = _new(tmp_path)
    log.append([_entry(i) for i in range(300)], signer)
    log.verify()  # the positive control
    tile = log.root / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[5] ^= 1
    tile.write_bytes(bytes(data))
    with pytest.raises(LogError, match="level-0 tiles do not match"):
        log.verify()
    data[5] ^= 1
    tile.write_bytes(bytes(data))
    (log.root / "tile/0/001.p/44").write_bytes(b"\0" * 31)
    with pytest.raises(LogError, match="not 44 hashes"):
        log.verify()


def test_a_checkpoint_signed_by_another_key_or_edited_is_refused(tmp_path: Path) -> None:
    log, signer = _new(tmp_path)
    log.append([_entry(0)], signer)
    other = TransparencyLog.open(log.root, Signer.generate("pccguard.test/log").verifier)
    with pytest.raises(LogError, match="does not verify"):
        other.checkpoint()
    point = log.root / "checkpoint"
    point.write_text(point.read_text(encoding="utf-8").replace("\n1\n", "\n2\n", 1), encoding="utf-8")
    with pytest.raises(LogError, match="does not verify"):
        log.checkpoint()


def test_one_writer_at_a_time_and_only_the_logs_key(tmp_path: Path) -> None:
    log, signer = _new(tmp_path)
    with pytest.raises(LogError, match="not the log's key"):
        log.append([_entry(0)], Signer.generate("pccguard.test/log"))
    fd = os.open(log.root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another writer
        with pytest.raises(LogError, match="another writer holds the log"):
            log.append([_entry(0)], signer)
    finally:
        os.close(fd)
    assert log.append([_entry(0)], signer).size == 1  # free again
    with pytest.raises(LogError, match="larger than"):
        log.append([b"x" * 70000], signer)


WRITER = """
import sys
from pathlib import Path
from pccguard.transparency.log import TransparencyLog, load_signer
root = Path(sys.argv[1])
log = TransparencyLog.open(root)
signer = load_signer(root, None)
while True:
    size = log.checkpoint().size
    batch = [f"entry-{i}".encode() for i in range(size, size + 1 + size % 97)]
    print(log.append(batch, signer).size, flush=True)
"""


def test_a_writer_killed_at_any_moment_loses_nothing_committed_and_leaves_a_log_that_verifies(
    tmp_path: Path,
) -> None:
    log, signer = _new(tmp_path)
    rng = random.Random(1)
    interrupted = 0
    for _trial in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log.root)], stdout=subprocess.PIPE, text=True, env=os.environ
        )
        time.sleep(0.3 + rng.random() * 0.4)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        committed = [int(line) for line in out.split()]
        point = log.verify()
        assert not committed or point.size >= committed[-1]  # nothing the writer reported committed is lost
        assert log.entries(point.size, 0, point.size) == [_entry(i) for i in range(point.size)]
        interrupted += _beyond(log.root, point.size)
    assert interrupted > 0, "no kill landed inside an append: the test showed nothing"
    assert point.size > 256  # the kills fell across tile boundaries
    after = log.append([_entry(point.size)], signer)  # the next writer goes on from the checkpoint
    assert log.verify() == after and after.size == point.size + 1


def _beyond(root: Path, size: int) -> bool:
    """Whether an interrupted append left files behind: a temporary file, or entry bundles past ``size``."""
    for path in (root / "tile").rglob("*"):
        if path.is_file() and path.name.endswith(".tmp"):
            return True
    for path in (root / "tile" / "entries").rglob("*"):
        if path.is_file():
            parts = path.relative_to(root / "tile" / "entries").parts
            partial = ".p" in parts[-2] if len(parts) > 1 else False
            index = int("".join(p.lstrip("x").removesuffix(".p") for p in (parts[:-1] if partial else parts)))
            width = int(parts[-1]) if partial else tiles.WIDTH
            if index * tiles.WIDTH + width > size:
                return True
    return False


def _cli(*argv: str) -> int:
    return main(["log", *argv])


def test_the_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "log"
    assert _cli("init", str(root), "--origin", "pccguard.test/cli") == 0
    files = []
    for i in range(3):
        files.append(tmp_path / f"e{i}")
        files[-1].write_bytes(_entry(i))
    assert _cli("append", str(root), *map(str, files)) == 0
    assert _cli("verify", str(root)) == 0
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith(
            f"root {__import__('base64').b64encode(merkle.root([merkle.leaf_hash(_entry(i)) for i in range(3)])).decode()}"
        )
    )
    assert _cli("prove", str(root), "2", "--from-size", "1") == 0
    assert '"consistency"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "{tmp}/nothing"], "not a pccguard log"),
        (["init", "{tmp}/log", "--origin", "has space"], "--origin must be"),
        (["init", "{tmp}"], "exists and is not empty"),
        (["prove", "{log}", "9"], "has no entry 9"),
        (["prove", "{log}", "0", "--from-size", "5"], "--from-size must be"),
        (["append", "{log}", "{tmp}/missing"], "cannot read the entry"),
        (["append", "{log}", "{tmp}/e", "--key", "{tmp}/e"], "signer key"),
        (["verify", "{log}", "--trusted-key", "{tmp}/e"], "verifier key"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    log, signer = _new(tmp_path)
    log.append([_entry(0)], signer)
    (tmp_path / "e").write_text("not a key\n", encoding="utf-8")
    capsys.readouterr()
    code = _cli(*[a.format(tmp=tmp_path, log=log.root) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert "verified" not in err
