"""``pccguard probe BASE_URL``: argument parsing and the progress bar; ``register`` wires it into a CLI.

Exit status: 0 pass, 1 sharing detected, 2 inconclusive or incomplete (the
server died, the positive control failed), like ``pccguard check``'s 0/1/2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pccguard.probe.audit import MAX_TRIALS, AuditConfig, request_budget, run_audit
from pccguard.probe.client import Identity
from pccguard.probe.report import print_table, write_all


def _identity(name: str, key: str | None, header: str | None, tenant: str | None) -> Identity:
    return Identity(name=name, api_key=key, tenant_header=header if tenant else None, tenant=tenant)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "base_url",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (nothing else is contacted)",
    )
    p.add_argument("--model", required=True, help="model name as the server lists it")
    p.add_argument("--victim-key", help="API key of the victim identity")
    p.add_argument("--attacker-key", help="API key of the attacker identity")
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
        help=f"hit probes and as many controls per section (max {MAX_TRIALS})",
    )
    p.add_argument("--prompt-words", type=int, default=120, help="words per prompt (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.01, help="KS significance level (default: %(default)s)")
    p.add_argument("--seed", type=int, help="seed of the probe order (prompts are always fresh random)")
    p.add_argument(
        "--out", type=Path, default=Path("probe-report"), help="report directory (default: %(default)s)"
    )


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    cfg = AuditConfig(
        base_url=args.base_url,
        model=args.model,
        victim=_identity("victim", args.victim_key, args.tenant_header, args.victim_tenant),
        attacker=_identity("attacker", args.attacker_key, args.tenant_header, args.attacker_tenant),
        trials=args.trials,
        prompt_words=args.prompt_words,
        timeout_s=args.timeout,
        alpha=args.alpha,
        victim_salt=args.victim_salt,
        seed=args.seed,
    )
    columns: list[Any] = [TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("probe", total=request_budget(cfg))
        report = run_audit(cfg, on_request=lambda: progress.advance(task))
    written = write_all(report, args.out)
    print_table(report, Console())
    console.print("report: " + ", ".join(written.values()))
    if not report.complete:
        console.print(f"[bold red]incomplete[/]: {report.error}")
        return 2
    if report.verdict.startswith("FAIL"):
        return 1
    return 0 if report.verdict.startswith("PASS") else 2


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``probe`` command; its handler is ``args.probe_handler(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "probe", help="black-box audit of a live server for cross-tenant prefix-cache sharing"
    )
    add_arguments(parser)
    parser.set_defaults(probe_handler=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m pccguard.probe.cli``) until the main CLI wires ``register``."""
    parser = argparse.ArgumentParser(prog="pccguard probe")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
