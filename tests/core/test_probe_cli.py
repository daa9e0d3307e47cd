"""``pccguard probe`` as a user runs it: a real process against real sockets on 127.0.0.1.

The server here is a stand-in for a serving engine, not an engine: a few
lines of ``http.server`` that speak the streamed completions API and emulate
a prefix cache (a fixed prefill delay per uncached prompt word, and
``usage.prompt_tokens_details.cached_tokens``). The probe is the thing under
test; the acceptance test against ``vllm serve`` is tests/e2e/test_serve_probe.py.

The stand-in's delays make a cache hit unmistakable (a fully cached prompt
answers at once, an uncached one after 16 ms), so the "sharing" runs are
deterministic in practice. Where the expected outcome is "no difference",
the statistics are honest: a 95% interval misses 0.5 now and then by chance,
so those runs retry (a retry only ever forgives chance: what the server
reports in ``cached_tokens`` is asserted on every attempt).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.core.standin_engine import PROXY_VARS, StandInEngine
from tests.core.support import REPO, CliResult, assert_clean_error

PROMPT_WORDS = 32


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    for var in (*PROXY_VARS, "no_proxy", "NO_PROXY", "PCCGUARD_DEBUG"):
        env.pop(var, None)
    return {**env, **(extra or {})}


def _run(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> CliResult:
    """Run a command line in its own process from the repository root, with the clean :func:`_env`."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env(env), cwd=REPO)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _probe_argv(base: str, out: Path, *extra: str, trials: int = 12) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pccguard.cli",
        "probe",
        base,
        "--model",
        "stand-in",
        "--trials",
        str(trials),
        "--prompt-words",
        str(PROMPT_WORDS),
        "--timeout",
        "5",
        "--out",
        str(out),
        *extra,
    ]


def probe(
    base: str, out: Path, *extra: str, trials: int = 12, env: dict[str, str] | None = None
) -> tuple[CliResult, dict[str, Any]]:
    """Run ``pccguard probe`` in its own process; return its result and the JSON report it wrote."""
    result = _run(_probe_argv(base, out, *extra, trials=trials), timeout=120, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads((out / "probe.json").read_text(encoding="utf-8"))
    return result, report


def section(report: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = next(s["result"] for s in report["sections"] if s["name"] == name)
    return result


def assert_only_base_url(engine: StandInEngine, *reports: dict[str, Any]) -> None:
    """Every request went to the given host and the completions path under the given base path.

    ``reports`` are all the probes run against ``engine`` so far; when each is
    complete, the requests they counted are exactly the requests it saw.
    """
    assert engine.seen
    assert {(s.method, s.path, s.host) for s in engine.seen} == {
        ("POST", "/v1/completions", f"127.0.0.1:{engine.port}")
    }
    if reports and all(r["complete"] for r in reports):
        assert len(engine.seen) == sum(r["requests"] for r in reports)
        assert all(r["requests"] <= 4 + 12 * r["config"]["trials"] for r in reports)


def assert_secrets_absent(secrets: list[str], result: CliResult, out: Path) -> None:
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"probe.json", "probe.html"} <= set(files)
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr
        for name, data in files.items():
            assert secret.encode() not in data, f"{name} contains an API key"


def assert_table_readable_at_80_columns(report: dict[str, Any], stdout: str) -> None:
    """The terminal table, as a CI log shows it, keeps every section name and interval whole."""
    assert max(len(line) for line in stdout.splitlines()) <= 80
    for s in report["sections"]:
        assert s["name"] in stdout
        r = s["result"]
        lo, hi = r["classifier_ci95"]
        assert f"{r['classifier_accuracy']:.2f} [{lo:.2f}, {hi:.2f}]" in stdout


# --------------------------------------------------------------------------- audits


def test_shared_cache_is_detected(engine_factory: Any, tmp_path: Path) -> None:
    engine = engine_factory("shared")
    decoy = engine_factory("shared")  # http_proxy points here: a probe that used it would show up
    keys = ["sk-victim-literal-5f2c", "sk-attacker-literal-9a71"]
    result, report = probe(
        engine.base,
        tmp_path / "report",
        *("--victim-key", keys[0], "--attacker-key", keys[1]),
        *("--victim-tenant", "alice", "--attacker-tenant", "mallory"),
        env={"COLUMNS": "80", **{var: f"http://127.0.0.1:{decoy.port}" for var in PROXY_VARS}},
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert_table_readable_at_80_columns(report, result.stdout)
    assert report["complete"] and report["error"] is None
    assert report["verdict"].startswith("FAIL")
    control, cross = section(report, "positive_control"), section(report, "cross_tenant")
    assert control["sharing_detected"] is True
    assert cross["sharing_detected"] is True
    assert cross["ks_p_value"] < 0.01
    assert cross["cached_tokens_max"] > 0
    assert_only_base_url(engine, report)
    assert decoy.seen == []
    assert {s.tenant for s in engine.seen} == {"alice", "mallory"}
    assert {s.authorization for s in engine.seen} == {f"Bearer {k}" for k in keys}
    assert report["config"]["identities"]["victim"] == {
        "api_key": True,
        "tenant_header": "x-pccguard-tenant",
        "tenant": "alice",
    }
    assert_secrets_absent(keys, result, tmp_path / "report")
    assert "<svg" in (tmp_path / "report" / "probe.html").read_text(encoding="utf-8")


def test_per_tenant_cache_passes_and_keys_come_from_the_environment(
    engine_factory: Any, tmp_path: Path
) -> None:
    engine = engine_factory("per_tenant")
    keys = {"VICTIM_KEY_FOR_TEST": "sk-victim-env-c0ffee", "ATTACKER_KEY_FOR_TEST": "sk-attacker-env-beef"}
    reports: list[dict[str, Any]] = []
    for attempt in range(3):  # chance alone excludes 0.5 from a 95% interval a few times in a hundred
        out = tmp_path / f"report{attempt}"
        result, report = probe(
            engine.base,
            out,
            *("--victim-key-env", "VICTIM_KEY_FOR_TEST", "--attacker-key-env", "ATTACKER_KEY_FOR_TEST"),
            *("--alpha", "0.001"),
            env=keys,
        )
        assert report["complete"], result.stderr
        reports.append(report)
        control, cross, salt = (section(report, n) for n in ("positive_control", "cross_tenant", "salt_copy"))
        # What the server says about its cache holds on every attempt, not only the lucky one.
        assert control["sharing_detected"] is True and control["cached_tokens_max"] > 0
        assert cross["cached_tokens_max"] == 0 and salt["cached_tokens_max"] == 0
        assert_only_base_url(engine, *reports)
        assert_secrets_absent(list(keys.values()), result, out)
        lo, hi = cross["classifier_ci95"]
        if result.returncode == 0 and lo <= 0.5 <= hi:
            break
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert report["verdict"].startswith("PASS")
    assert lo <= 0.5 <= hi
    assert {s.authorization for s in engine.seen} == {f"Bearer {v}" for v in keys.values()}
    assert {s.tenant for s in engine.seen} == {None}


def test_a_server_that_never_caches_is_inconclusive(engine_factory: Any, tmp_path: Path) -> None:
    engine = engine_factory("none")
    reports: list[dict[str, Any]] = []
    # On pure noise the positive control reports sharing with chance at most
    # alpha per run; three runs in a row at alpha 0.001 would be a real fault.
    for attempt in range(3):
        result, report = probe(
            engine.base,
            tmp_path / f"report{attempt}",
            *("--victim-tenant", "alice", "--attacker-tenant", "mallory", "--alpha", "0.001"),
        )
        assert report["complete"]
        reports.append(report)
        assert section(report, "positive_control")["cached_tokens_max"] == 0
        if result.returncode == 2:
            break
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert report["verdict"].startswith("inconclusive")
    assert section(report, "positive_control")["sharing_detected"] is False
    assert_only_base_url(engine, *reports)


def test_server_killed_mid_probe_gives_an_incomplete_report(engine_factory: Any, tmp_path: Path) -> None:
    engine = engine_factory("shared", die_after=40)
    started = time.monotonic()
    result, report = probe(
        engine.base, tmp_path / "report", "--victim-tenant", "alice", "--attacker-tenant", "mallory"
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert report["complete"] is False
    assert report["error"] and report["verdict"].startswith("incomplete")
    assert report["requests"] == 40
    assert "probe incomplete" in result.stderr
    assert "INCOMPLETE" in (tmp_path / "report" / "probe.html").read_text(encoding="utf-8")
    assert not [p for p in (tmp_path / "report").iterdir() if p.name.endswith(".tmp")]
    assert_only_base_url(engine, report)
    assert time.monotonic() - started < 30


def _sigint_as_from_a_terminal() -> None:
    """Give the child SIGINT's default action, as a terminal's Ctrl-C finds it.

    A shell that starts a job in the background hands it SIGINT ignored, and a
    Python started so keeps ignoring it (it raises KeyboardInterrupt only where
    the parent left SIGINT alone); a test suite run that way would otherwise
    test nothing here.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_writes_an_incomplete_report(engine_factory: Any, tmp_path: Path) -> None:
    engine = engine_factory("shared")
    out = tmp_path / "report"
    proc = subprocess.Popen(
        _probe_argv(engine.base, out, "--victim-tenant", "alice", "--attacker-tenant", "mallory", trials=200),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
        preexec_fn=_sigint_as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 60
        while len(engine.seen) < 30 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    report = json.loads((out / "probe.json").read_text(encoding="utf-8"))
    assert report["complete"] is False and "interrupted" in report["error"]
    assert 30 <= report["requests"] < 4 + 12 * 200
    assert "probe incomplete" in stderr


def test_redirects_and_proxies_are_not_followed(engine_factory: Any, tmp_path: Path) -> None:
    decoy = engine_factory("shared")
    engine = engine_factory("redirect", redirect_to=f"http://127.0.0.1:{decoy.port}")
    result, report = probe(
        engine.base,
        tmp_path / "report",
        *("--victim-tenant", "alice", "--attacker-tenant", "mallory"),
        env={var: f"http://127.0.0.1:{decoy.port}" for var in PROXY_VARS},
    )
    assert result.returncode == 2
    assert report["complete"] is False and "307" in report["error"]
    assert len(engine.seen) == 1 and decoy.seen == []
    assert_only_base_url(engine, report)


# --------------------------------------------------------------------------- argument errors

SECRET = "sk-never-print-3e1d"

TENANTS = ("--victim-tenant", "a", "--attacker-tenant", "b")

#: (id, BASE_URL then arguments, extra environment, words the error must name); one branch of the checks each.
BAD_ARGUMENTS: list[tuple[str, list[str], dict[str, str], tuple[str, ...]]] = [
    ("scheme", ["ftp://127.0.0.1:{port}/v1", *TENANTS], {}, ("scheme",)),
    ("no-host", ["http:///v1", *TENANTS], {}, ("host",)),
    ("bad-port", ["http://127.0.0.1:99999/v1", *TENANTS], {}, ("URL",)),
    ("credentials", [f"http://user:{SECRET}@127.0.0.1:{{port}}/v1", *TENANTS], {}, ("credentials",)),
    ("query", ["{base}?api_key=1", *TENANTS], {}, ("query",)),
    ("trials-low", ["{base}", *TENANTS, "--trials", "1"], {}, ("--trials",)),
    ("trials-not-int", ["{base}", *TENANTS, "--trials", "many"], {}, ("--trials",)),
    ("words", ["{base}", *TENANTS, "--prompt-words", "2"], {}, ("--prompt-words",)),
    ("timeout-nan", ["{base}", *TENANTS, "--timeout", "nan"], {}, ("--timeout",)),
    ("timeout-huge", ["{base}", *TENANTS, "--timeout", "1e9"], {}, ("--timeout",)),
    ("alpha-one", ["{base}", *TENANTS, "--alpha", "1"], {}, ("--alpha",)),
    ("same-tenant", ["{base}", "--victim-tenant", "a", "--attacker-tenant", "a"], {}, ("same identity",)),
    ("no-attacker", ["{base}", "--victim-tenant", "a"], {}, ("attacker needs an identity",)),
    (
        "same-key-from-env",
        ["{base}", "--victim-key-env", "K1_FOR_TEST", "--attacker-key-env", "K2_FOR_TEST"],
        {"K1_FOR_TEST": SECRET, "K2_FOR_TEST": SECRET},
        ("same identity",),
    ),
    ("unset-env", ["{base}", "--victim-key-env", "UNSET_FOR_TEST", *TENANTS[2:]], {}, ("UNSET_FOR_TEST",)),
    (
        "key-and-env",
        ["{base}", "--victim-key", SECRET, "--victim-key-env", "K1_FOR_TEST", *TENANTS[2:]],
        {"K1_FOR_TEST": "x"},
        ("not both",),
    ),
    (
        "key-with-newline",
        ["{base}", "--victim-key-env", "K1_FOR_TEST", *TENANTS[2:]],
        {"K1_FOR_TEST": SECRET + "\nX-Injected: 1"},
        ("API key",),
    ),
    ("reserved-header", ["{base}", *TENANTS, "--tenant-header", "Host"], {}, ("--tenant-header",)),
    ("engine-args", ["{base}", *TENANTS, "--", "x"], {}, ("engine arguments",)),
]


@pytest.fixture(scope="module")
def bad_argument_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every bad command line, run concurrently (each is its own process) against one live stand-in."""
    engine = StandInEngine("shared").start()
    root = tmp_path_factory.mktemp("bad-arguments")

    def one(case: tuple[str, list[str], dict[str, str], tuple[str, ...]]) -> tuple[str, CliResult, Path]:
        name, args, env, _ = case
        out = root / name / "report"
        argv = [a.format(base=engine.base, port=engine.port) for a in args]
        command = [sys.executable, "-m", "pccguard.cli", "probe", argv[0], "--model", "m", "--out", str(out)]
        return name, _run([*command, *argv[1:]], timeout=60, env=env), out

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {name: (result, out) for name, result, out in pool.map(one, BAD_ARGUMENTS)}
    yield {"results": results, "engine": engine}
    engine.kill()


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=[c[0] for c in BAD_ARGUMENTS])
def test_bad_arguments_are_one_line_errors_before_anything_happens(
    case: tuple[str, list[str], dict[str, str], tuple[str, ...]], bad_argument_runs: dict[str, Any]
) -> None:
    result, out = bad_argument_runs["results"][case[0]]
    assert_clean_error(result, *case[3])
    assert SECRET not in result.stderr and SECRET not in result.stdout
    assert not out.parent.exists(), "no report directory on an argument error"
    assert bad_argument_runs["engine"].seen == [], "nothing is sent on an argument error"


def test_out_that_is_a_file_is_refused_before_probing(engine_factory: Any, tmp_path: Path) -> None:
    engine = engine_factory("shared")
    out = tmp_path / "taken"
    out.write_text("keep me", encoding="utf-8")
    result = _run(_probe_argv(engine.base, out, "--victim-tenant", "a", "--attacker-tenant", "b"), timeout=60)
    assert_clean_error(result, "existing file")
    assert out.read_text(encoding="utf-8") == "keep me"
    assert engine.seen == []


def test_module_entry_point_is_the_same_command(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "pccguard.probe.cli",
        "ftp://x/v1",
        "--model",
        "m",
        "--out",
        str(tmp_path / "r"),
    ]
    assert_clean_error(_run(argv, timeout=60), "scheme")
    assert not (tmp_path / "r").exists()
