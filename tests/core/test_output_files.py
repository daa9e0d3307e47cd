"""``-o PATH`` replaces only what it should: regular files atomically, nothing else.

Every device, FIFO and link here is made under ``tmp_path`` (a ``/dev/null``
twin by ``mknod``, a symlink to ``/proc/self/fd/1`` as ``/dev/stdout`` is one),
so a regression replaces a test file, never the machine's own ``/dev/null``.
"""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pccguard.errors import InputError, UsageError
from pccguard.files.output import write_atomic
from tests.core.support import MINIMAL_FACTS, REPO, assert_clean_error, run_cli

#: ``check`` (a report), ``facts`` and ``schema``: every command with ``-o/--output``.
COMMANDS = {
    "check": lambda facts: ["check", facts, "--format", "json"],
    "facts": lambda facts: ["facts", facts],
    "schema": lambda facts: ["schema"],
}


def _cli_with_umask(umask: int, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PCCGUARD_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pccguard.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        preexec_fn=lambda: os.umask(umask),
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def facts(write) -> Path:
    return write("facts.yaml", MINIMAL_FACTS)


# --------------------------------------------------------------------------- regular files


def test_new_file_gets_0666_minus_umask(facts: Path, tmp_path: Path):
    out = tmp_path / "report.json"
    result = _cli_with_umask(0o027, "check", facts, "--format", "json", "-o", out)
    assert result.returncode == 1, result.stderr
    assert _mode(out) == 0o640
    result = _cli_with_umask(0o002, "schema", "-o", tmp_path / "schema.json")
    assert result.returncode == 0, result.stderr
    assert _mode(tmp_path / "schema.json") == 0o664


def test_existing_file_keeps_its_mode_and_owner(facts: Path, tmp_path: Path):
    out = tmp_path / "report.json"
    out.write_text("old\n")
    out.chmod(0o604)
    owner = None
    if os.geteuid() == 0:
        os.chown(out, 4321, 4321)
        owner = (4321, 4321)
    result = _cli_with_umask(0o077, "check", facts, "--format", "json", "-o", out)
    assert result.returncode == 1, result.stderr
    assert out.read_text().startswith("{")
    assert _mode(out) == 0o604
    if owner is not None:
        assert (out.stat().st_uid, out.stat().st_gid) == owner


def test_setuid_bits_are_not_carried_over(tmp_path: Path):
    out = tmp_path / "report.txt"
    out.write_text("old\n")
    out.chmod(0o4755)
    write_atomic(out, "new\n")
    assert _mode(out) == 0o755 and out.read_text() == "new\n"


def test_no_temporary_file_is_left_behind(facts: Path, tmp_path: Path):
    out = tmp_path / "out" / "report.sarif"
    out.parent.mkdir()
    for _ in range(2):
        assert run_cli("check", facts, "--format", "sarif", "-o", out).returncode == 1
    assert [p.name for p in out.parent.iterdir()] == ["report.sarif"]


def test_hard_link_is_broken_and_the_other_name_keeps_the_old_report(facts: Path, tmp_path: Path):
    """The documented choice: atomic replacement of the named file, not an in-place rewrite."""
    out, other = tmp_path / "report.json", tmp_path / "other-name.json"
    out.write_text("previous report\n")
    os.link(out, other)
    result = run_cli("check", facts, "--format", "json", "-o", out)
    assert result.returncode == 1, result.stderr
    assert out.read_text().startswith("{")
    assert other.read_text() == "previous report\n"
    assert out.stat().st_nlink == other.stat().st_nlink == 1


# --------------------------------------------------------------------------- symlinks


def test_symlink_is_followed_and_stays_a_link(facts: Path, tmp_path: Path):
    target = tmp_path / "reports" / "latest.json"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o644)
    link = tmp_path / "report.json"
    link.symlink_to(target)
    result = run_cli("check", facts, "--format", "json", "-o", link)
    assert result.returncode == 1, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("{") and _mode(target) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest.json"]


def test_dangling_symlink_gets_its_target_created(tmp_path: Path):
    target = tmp_path / "made.json"
    link = tmp_path / "link.json"
    link.symlink_to(target.name)
    assert run_cli("schema", "-o", link).returncode == 0
    assert link.is_symlink() and target.read_text().startswith("{")


# --------------------------------------------------------------------------- devices and FIFOs


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_character_device_is_written_through_not_replaced(command: str, facts: Path, tmp_path: Path):
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the same device as /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    before = node.stat()
    result = run_cli(*COMMANDS[command](facts), "-o", node)
    assert result.returncode in (0, 1), result.stderr
    after = node.lstat()
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert result.stdout == ""


def test_stdout_through_a_proc_fd_link_is_written_through(facts: Path, tmp_path: Path):
    """What ``-o /dev/stdout`` is: a symlink to ``/proc/self/fd/1``, here a pipe."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    result = run_cli("check", facts, "--format", "json", "-o", link)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("{") and '"results"' in result.stdout
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


def _drain(fd: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> bytes:
    """Everything written into the FIFO open on ``fd`` until ``proc`` has exited."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            chunk = os.read(fd, 65536) if ready else b""
            if chunk:
                chunks.append(chunk)
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.02)  # no writer yet, or between writes: a FIFO without a writer reads as EOF
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return b"".join(chunks)


def test_fifo_is_written_through_not_replaced(facts: Path, tmp_path: Path):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader before the writer: it never blocks
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pccguard.cli", "check", str(facts), "--format", "json", "-o", str(fifo)],
            cwd=REPO,
            env={**os.environ, "NO_COLOR": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        data = _drain(fd, proc)
    finally:
        os.close(fd)
    assert proc.returncode == 1
    assert data.startswith(b"{") and b'"results"' in data
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_directory_is_refused(command: str, facts: Path, tmp_path: Path):
    folder = tmp_path / "reports"
    folder.mkdir()
    assert_clean_error(run_cli(*COMMANDS[command](facts), "-o", folder), "is a directory")
    assert folder.is_dir() and not any(folder.iterdir())


def test_socket_is_refused(tmp_path: Path):
    import socket

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert_clean_error(run_cli("schema", "-o", path), "not a regular file")
        assert stat.S_ISSOCK(path.lstat().st_mode)


def _same_bytes(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before, f"{path} was overwritten"


@pytest.mark.parametrize("command", ["check", "facts"])
@pytest.mark.parametrize("how", ["same name", "symlink", "hard link"])
def test_output_onto_the_facts_file_is_refused(command: str, how: str, facts: Path, tmp_path: Path):
    before = facts.read_bytes()
    out = facts
    if how == "symlink":
        out = tmp_path / "out.yaml"
        out.symlink_to(facts)
    elif how == "hard link":
        out = tmp_path / "out.yaml"
        os.link(facts, out)
    result = run_cli(*COMMANDS[command](facts), "-o", out)
    assert_clean_error(result, "refusing to overwrite", str(facts))
    _same_bytes(facts, before)


def test_output_onto_waivers_profile_or_rule_is_refused(facts: Path, write, tmp_path: Path):
    waivers = write("waivers.yaml", "waivers: []\n")
    profile = write(
        "profile.yaml",
        "name: mine\ndescription: a custom profile for the test\nparams: {}\n",
    )
    rules_dir = tmp_path / "rules"
    rule = rules_dir / "notes.rego"
    rule.parent.mkdir()
    rule.write_text("package pcc.lib.notes\n")
    base = ["check", facts, "--format", "json", "--waivers", waivers, "--profile", profile]
    for victim in (waivers, profile):
        before = victim.read_bytes()
        assert_clean_error(run_cli(*base, "-o", victim), "refusing to overwrite")
        _same_bytes(victim, before)
    before = rule.read_bytes()
    assert_clean_error(run_cli(*base, "--rules", rules_dir, "-o", rule), "refusing to overwrite")
    _same_bytes(rule, before)


def test_write_atomic_refuses_an_input_before_touching_anything(tmp_path: Path):
    source = tmp_path / "in.yaml"
    source.write_text("keep\n")
    with pytest.raises(UsageError, match="refusing to overwrite"):
        write_atomic(source, "lost\n", inputs=[source])
    assert source.read_text() == "keep\n"


def test_write_atomic_errors_are_input_errors(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        write_atomic(blocker / "report.json", "x")
    with pytest.raises(InputError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "report.json", "x")
