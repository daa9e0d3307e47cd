"""``pccguard probe BASE_URL``: arguments, their checks, the progress bar; ``register`` wires it into a CLI.

Exit status: 0 pass, 1 sharing detected, 2 inconclusive or incomplete (the
server died, a request timed out, the positive control failed, Ctrl-C), like
``pccguard check``'s 0/1/2. Bad arguments are a ``UsageError`` (one line, exit
2) raised before any request is sent or any file is written. An audit that
stops early still writes its report, marked ``"complete": false``.

This module imports only the standard library at load time: ``pccguard``
builds its whole parser on every start, and ``pccguard check`` should not
pay for the HTTP client, the statistics or rich's progress bar.

API keys are read from ``--victim-key-env``/``--attacker-key-env`` (environment
variables, so they are not in the process list or shell history) or, less
safely, from ``--victim-key``/``--attacker-key``. They go only into the
``Authorization`` header: never into the report, the terminal or an error.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pccguard.errors import PccguardError, UsageError
from pccguard.probe.params import (
    MAX_PROMPT_WORDS,
    MAX_TIMEOUT_S,
    MAX_TRIALS,
    MIN_PROMPT_WORDS,
    MIN_TRIALS,
    base_url_problem,
    identity_value_problem,
)

if TYPE_CHECKING:
    from rich.console import Console

    from pccguard.probe.audit import AuditConfig
    from pccguard.probe.client import Identity

#: An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers the client sets itself or that would change where or how the request goes.
_RESERVED_HEADERS = frozenset(
    {"authorization", "host", "content-type", "content-length", "transfer-encoding", "connection"}
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "base_url",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (nothing else is contacted)",
    )
    p.add_argument("--model", required=True, help="model name as the server lists it")
    p.add_argument(
        "--victim-key-env",
        metavar="VAR",
        help="environment variable holding the victim's API key (preferred over --victim-key)",
    )
    p.add_argument(
        "--attacker-key-env",
        metavar="VAR",
        help="environment variable holding the attacker's API key (preferred over --attacker-key)",
    )
    p.add_argument("--victim-key", metavar="KEY", help="API key of the victim (visible in the process list)")
    p.add_argument(
        "--attacker-key", metavar="KEY", help="API key of the attacker (visible in the process list)"
    )
    p.add_argument(
        "--tenant-header", default="x-pccguard-tenant", help="header naming the tenant (default: %(default)s)"
    )
    p.add_argument("--victim-tenant", help="tenant id of the victim, sent in --tenant-header")
    p.add_argument("--attacker-tenant", help="tenant id of the attacker, sent in --tenant-header")
    p.add_argument(
        "--victim-salt", help="a client cache_salt the victim sends (the salt-copy attempt copies it)"
    )
    p.add_argument(
        "--trials",
        type=int,
        default=60,
        help=f"hit probes and as many controls per section, {MIN_TRIALS}..{MAX_TRIALS} (default: %(default)s)",
    )
    p.add_argument(
        "--prompt-words",
        type=int,
        default=120,
        help=f"words per prompt, {MIN_PROMPT_WORDS}..{MAX_PROMPT_WORDS} (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help=f"seconds per request, at most {MAX_TIMEOUT_S:g} (default: %(default)s)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.01,
        help="chance that timing noise alone reports sharing, 0 < alpha < 1 (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, help="seed of the probe order (prompts are always fresh random)")
    p.add_argument(
        "--out", type=Path, default=Path("probe-report"), help="report directory (default: %(default)s)"
    )
    p.add_argument(
        "--plant",
        type=Path,
        metavar="FILE",
        help="instead of an audit: send one prompt carrying a fresh random canary as the victim, write the "
        "canary to FILE and stop (then look for it at rest: pccguard scan PATH --canary-file FILE)",
    )


# --------------------------------------------------------------------------- checks


def _key(args: argparse.Namespace, who: str) -> str | None:
    """The API key of ``who`` from its option or its environment variable; never quoted in an error."""
    literal: str | None = getattr(args, f"{who}_key", None)
    var: str | None = getattr(args, f"{who}_key_env", None)
    if literal is not None and var is not None:
        raise UsageError(f"give either --{who}-key or --{who}-key-env, not both")
    if var is not None:
        if not var or "=" in var or "\0" in var:
            raise UsageError(f"--{who}-key-env must name an environment variable")
        value = os.environ.get(var)
        if not value:
            raise UsageError(f"environment variable {var} (--{who}-key-env) is not set or empty")
        literal = value
    if literal is None:
        return None
    problem = identity_value_problem(literal)
    if problem is not None:
        raise UsageError(f"the {who}'s API key {problem}")
    return literal


def _tenant(args: argparse.Namespace, who: str) -> str | None:
    value: str | None = getattr(args, f"{who}_tenant", None)
    if value is None:
        return None
    problem = identity_value_problem(value)
    if problem is not None:
        raise UsageError(f"--{who}-tenant {problem}")
    return value


def _check_numbers(args: argparse.Namespace) -> None:
    if not MIN_TRIALS <= args.trials <= MAX_TRIALS:
        raise UsageError(f"--trials must be between {MIN_TRIALS} and {MAX_TRIALS}, got {args.trials}")
    if not MIN_PROMPT_WORDS <= args.prompt_words <= MAX_PROMPT_WORDS:
        raise UsageError(
            f"--prompt-words must be between {MIN_PROMPT_WORDS} and {MAX_PROMPT_WORDS}, got {args.prompt_words}"
        )
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= MAX_TIMEOUT_S):
        raise UsageError(f"--timeout must be greater than 0 and at most {MAX_TIMEOUT_S:g} seconds")
    if not (math.isfinite(args.alpha) and 0 < args.alpha < 1):
        raise UsageError("--alpha must be strictly between 0 and 1")


def config_from_args(args: argparse.Namespace) -> AuditConfig:
    """Check every argument and build the audit, or raise ``UsageError`` before anything is sent.

    The identities must be told apart by the server: an audit of one identity
    against itself would report "no sharing" about nothing, so each needs a key
    or a tenant and the two must differ in at least one of them.
    """
    problem = base_url_problem(args.base_url)
    if problem is not None:
        raise UsageError(problem)
    if not args.model or not args.model.strip():
        raise UsageError("--model must not be empty")
    _check_numbers(args)
    if not _HEADER_NAME.fullmatch(args.tenant_header or ""):
        raise UsageError("--tenant-header must be an HTTP header name (letters, digits, '-')")
    if args.tenant_header.lower() in _RESERVED_HEADERS:
        raise UsageError(f"--tenant-header must not be {args.tenant_header!r}, the client sets it")
    salt_problem = None if args.victim_salt is None else identity_value_problem(args.victim_salt)
    if salt_problem is not None:
        raise UsageError(f"--victim-salt {salt_problem}")
    victim_key, attacker_key = _key(args, "victim"), _key(args, "attacker")
    victim_tenant, attacker_tenant = _tenant(args, "victim"), _tenant(args, "attacker")
    for who, key, tenant in (
        ("victim", victim_key, victim_tenant),
        ("attacker", attacker_key, attacker_tenant),
    ):
        if key is None and tenant is None:
            raise UsageError(
                f"the {who} needs an identity: --{who}-key-env (or --{who}-key) and/or --{who}-tenant"
            )
    if (victim_key, victim_tenant) == (attacker_key, attacker_tenant):
        raise UsageError("victim and attacker are the same identity (same API key and tenant)")

    from pccguard.probe.audit import AuditConfig

    return AuditConfig(
        base_url=args.base_url,
        model=args.model,
        victim=_identity("victim", victim_key, args.tenant_header, victim_tenant),
        attacker=_identity("attacker", attacker_key, args.tenant_header, attacker_tenant),
        trials=args.trials,
        prompt_words=args.prompt_words,
        timeout_s=args.timeout,
        alpha=args.alpha,
        victim_salt=args.victim_salt,
        seed=args.seed,
    )


def _identity(name: str, key: str | None, header: str, tenant: str | None) -> Identity:
    from pccguard.probe.client import Identity

    return Identity(name=name, api_key=key, tenant_header=header if tenant else None, tenant=tenant)


# --------------------------------------------------------------------------- command


def _victim(args: argparse.Namespace) -> Identity:
    """The checks a plant shares with an audit, for the one identity a plant needs."""
    problem = base_url_problem(args.base_url)
    if problem is not None:
        raise UsageError(problem)
    if not args.model or not args.model.strip():
        raise UsageError("--model must not be empty")
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= MAX_TIMEOUT_S):
        raise UsageError(f"--timeout must be greater than 0 and at most {MAX_TIMEOUT_S:g} seconds")
    if not _HEADER_NAME.fullmatch(args.tenant_header or ""):
        raise UsageError("--tenant-header must be an HTTP header name (letters, digits, '-')")
    if args.tenant_header.lower() in _RESERVED_HEADERS:
        raise UsageError(f"--tenant-header must not be {args.tenant_header!r}, the client sets it")
    key, tenant = _key(args, "victim"), _tenant(args, "victim")
    if key is None and tenant is None:
        raise UsageError(
            "the victim needs an identity: --victim-key-env (or --victim-key) and/or --victim-tenant"
        )
    return _identity("victim", key, args.tenant_header, tenant)


def plant(args: argparse.Namespace) -> int:
    """Send one canary prompt as the victim; write the canary to ``--plant`` only once the server took it.

    The canary is fresh and random (128 bits), so finding it later can only
    mean this request's prompt was kept. It goes into the file and nowhere
    else: not the terminal, not an error.
    """
    import secrets

    from pccguard.files.output import check_output, write_atomic
    from pccguard.probe.client import Client, ProbeError

    victim = _victim(args)
    check_output(args.plant)
    canary = f"pccguard-canary-{secrets.token_hex(16)}"
    prompt = f"Please remember the reference code {canary} for later. What is the capital of France?"
    try:
        Client(args.base_url, args.model, args.timeout).complete(victim, prompt)
    except ProbeError as exc:
        raise PccguardError(f"the canary was not planted: {exc}") from None
    write_atomic(args.plant, canary + "\n")
    print(f"planted one canary as the victim; look for it: pccguard scan PATH... --canary-file {args.plant}")
    return 0


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Check the arguments, probe, write the report; the exit status as in the module docstring."""
    if args.plant is not None:
        return plant(args)
    cfg = config_from_args(args)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pccguard.probe.audit import request_budget, run_audit
    from pccguard.probe.report import prepare_dir, print_table, write_all

    out: Path = args.out
    prepare_dir(out)  # fail on an unwritable directory before the first request, not after the last
    console = console or Console(stderr=True)
    columns: list[Any] = [TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    # No bar when stderr is not a terminal: a log file gets the result lines only.
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("probe", total=request_budget(cfg))
        report = run_audit(cfg, on_request=lambda: progress.advance(task))
    written = write_all(report, out)
    print_table(report, Console())
    if not report.complete:
        console.print(
            f"pccguard: error: probe incomplete: {report.error}; partial report in {written['json']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 2
    console.print("report: " + ", ".join(written.values()), markup=False, highlight=False, soft_wrap=True)
    if report.verdict.startswith("FAIL"):
        return 1
    return 0 if report.verdict.startswith("PASS") else 2


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``probe`` command; its handler is ``args.probe_handler(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "probe",
        help="black-box audit of a live server for cross-tenant prefix-cache sharing",
        description="Audit a running OpenAI-compatible server from the outside: does one identity's "
        "prompt make another identity's identical prompt faster (a shared prefix cache)? "
        "Only BASE_URL is contacted; exit 0 pass, 1 sharing detected, 2 inconclusive or incomplete.",
    )
    add_arguments(parser)
    parser.set_defaults(probe_handler=run)
    return parser


if __name__ == "__main__":  # ``python -m pccguard.probe.cli`` is ``pccguard probe``
    import sys

    from pccguard.cli import main

    raise SystemExit(main(["probe", *sys.argv[1:]]))
