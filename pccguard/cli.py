"""The ``pccguard`` command line.

Exit status: 0 clean, 1 findings at or above ``--fail-on`` (or failures such as
an expired waiver), 2 usage, input or engine errors; ``pccguard probe`` keeps
that scale (0 pass, 1 sharing detected, 2 inconclusive or incomplete). Errors
are one line on stderr, never a traceback (set ``PCCGUARD_DEBUG=1`` to see
one). Output files are written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pccguard import __version__
from pccguard.errors import InputError, PccguardError, UsageError
from pccguard.files.output import check_output, emit
from pccguard.policy.metadata import SEVERITIES

# Cheap to import: the probe's HTTP client, statistics and rich load only when ``pccguard probe`` runs.
from pccguard.probe.cli import register as register_probe
from pccguard.scan.cli import register as register_scan
from pccguard.transparency.cli import register as register_log

if TYPE_CHECKING:
    from pccguard.evaluation.settings import PolicySettings
    from pccguard.facts.model import DeploymentFacts
    from pccguard.policy.engines.limits import EvalLimits
    from pccguard.policy.rulebook import Rulebook

FORMAT_CHOICES = ("table", "json", "sarif", "junit", "markdown", "html")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _split_engine_args(argv: list[str]) -> tuple[list[str], list[str] | None]:
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, None


def _add_rule_source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        dest="rules_dirs",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="extra rules directory (repeatable); a rule with a shipped id overrides the shipped one",
    )


def _add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opa-url", help="evaluate on a central OPA server (http[s]://HOST:PORT) instead")
    parser.add_argument(
        "--opa-token-env",
        default="PCCGUARD_OPA_TOKEN",
        metavar="VAR",
        help="environment variable holding the OPA bearer token (default: %(default)s)",
    )
    parser.add_argument(
        "--opa-timeout", type=float, default=5.0, metavar="SECONDS", help="default: %(default)s"
    )


def _add_limit_args(parser: argparse.ArgumentParser) -> None:
    """Bounds on each evaluation (a rule is code; a custom one can loop or allocate without end)."""
    from pccguard.policy.engines.limits import DEFAULT_MAX_INPUT_BYTES, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S

    group = parser.add_argument_group("evaluation limits (0 disables one)")
    group.add_argument(
        "--eval-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="default: %(default)s",
    )
    group.add_argument(
        "--eval-memory",
        type=int,
        default=DEFAULT_MEMORY_MB,
        metavar="MIB",
        help="memory the evaluation may add (default: %(default)s)",
    )
    group.add_argument(
        "--max-facts-bytes",
        type=int,
        default=DEFAULT_MAX_INPUT_BYTES,
        metavar="BYTES",
        help="largest facts document, as policy input (default: %(default)s)",
    )


def _limits(args: argparse.Namespace) -> EvalLimits:
    from pccguard.policy.engines.limits import EvalLimits

    return EvalLimits(
        timeout_s=args.eval_timeout, memory_mb=args.eval_memory, max_input_bytes=args.max_facts_bytes
    )


def _policy_settings(args: argparse.Namespace) -> PolicySettings:
    """``pccguard check``'s arguments as the policy settings a serving plugin builds from its config file."""
    from pccguard.evaluation.settings import PolicySettings

    return PolicySettings.from_options(args, limits=_limits(args))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pccguard",
        description="Check LLM serving deployments against Private Cloud Compute requirements (S, E, T, P, V).",
    )
    parser.add_argument("--version", action="version", version=f"pccguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = sub.add_parser(
        "check",
        help="evaluate a deployment and report verdicts",
        description="Evaluate FACTS (a YAML/JSON facts file), or an engine's own arguments given after "
        "'--engine NAME --', against the rulebook.",
    )
    check.add_argument("facts", nargs="?", type=Path, help="facts file (YAML or JSON)")
    check.add_argument(
        "--engine", help="collect facts from an engine's arguments given after '--' (vllm, sglang)"
    )
    check.add_argument("--profile", default="pcc-strict", help="profile name or file (default: %(default)s)")
    check.add_argument("--waivers", type=Path, help="waivers file")
    check.add_argument("--format", "-f", choices=FORMAT_CHOICES, default="table", help="default: %(default)s")
    check.add_argument(
        "--output", "-o", type=Path, help="write the report here (atomically) instead of stdout"
    )
    check.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="low",
        help="exit 1 when a rule fails at this severity or above (default: %(default)s)",
    )
    check.add_argument("--no-color", action="store_true", help="plain table output")
    check.add_argument(
        "--show-all",
        action="store_true",
        help="table: also list not-applicable rules (hidden by default, counted in the footer)",
    )
    _add_rule_source_args(check)
    _add_engine_args(check)
    _add_limit_args(check)

    facts = sub.add_parser("facts", help="print the facts collected from a file or an engine's arguments")
    facts.add_argument("facts", nargs="?", type=Path, help="facts file to validate and normalise")
    facts.add_argument("--engine", help="collect from an engine's arguments given after '--'")
    facts.add_argument("--output", "-o", type=Path)

    schema = sub.add_parser("schema", help="print the JSON Schema of facts documents")
    schema.add_argument("--output", "-o", type=Path)

    catalog = sub.add_parser("catalog", help="list the optimization catalog")
    catalog.add_argument("--format", "-f", choices=("table", "json"), default="table")

    rules = sub.add_parser("rules", help="list, lint, test, explain, scaffold and bundle rules")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=_Parser)
    rlist = rsub.add_parser("list", help="list rules")
    rlist.add_argument("--format", "-f", choices=("table", "json"), default="table")
    _add_rule_source_args(rlist)
    rlint = rsub.add_parser("lint", help="check metadata, catalog references and the portable Rego subset")
    _add_rule_source_args(rlint)
    rtest = rsub.add_parser("test", help="run every rule's fixtures")
    rtest.add_argument(
        "--rule", action="append", default=[], metavar="ID", help="only this rule (repeatable)"
    )
    _add_rule_source_args(rtest)
    _add_limit_args(rtest)
    rexplain = rsub.add_parser("explain", help="show one rule: metadata, catalog row, fixtures")
    rexplain.add_argument("rule_id", metavar="ID")
    _add_rule_source_args(rexplain)
    rnew = rsub.add_parser("new", help="scaffold a rule and its fixtures")
    rnew.add_argument("rule_id", metavar="ID")
    rnew.add_argument("--dir", type=Path, required=True, help="custom rules directory to write into")
    rnew.add_argument("--requirement", required=True, choices=("S", "E", "T", "P", "V"))
    rnew.add_argument("--optimization", required=True, help="catalog id the rule is about")
    rnew.add_argument("--severity", default="medium", choices=SEVERITIES)
    rnew.add_argument("--mitigation", help="mitigation id (default: disable:<optimization>)")
    rnew.add_argument("--title")
    rbundle = rsub.add_parser("bundle", help="write the rulebook as an OPA bundle directory")
    rbundle.add_argument("out", type=Path)
    _add_rule_source_args(rbundle)
    register_probe(sub)
    register_scan(sub)
    register_log(sub)
    return parser


# --------------------------------------------------------------------------- commands


def _collect_facts(args: argparse.Namespace, engine_args: list[str] | None) -> DeploymentFacts:
    from pccguard.facts.load import load_facts

    if args.engine:
        if args.facts is not None:
            raise UsageError("give either a facts file or --engine NAME -- ARGS, not both")
        if engine_args is None:
            raise UsageError(f"--engine {args.engine} needs the engine's arguments after '--'")
        from pccguard.facts.collect import get_collector

        # A compliance check reads the local model directory; it never fetches from a model hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return get_collector(args.engine)(engine_args, dict(os.environ))
    if engine_args is not None:
        raise UsageError("arguments after '--' need --engine NAME")
    if args.facts is None:
        raise UsageError("give a facts file, or --engine NAME -- ARGS")
    return load_facts(args.facts)


def _input_files(args: argparse.Namespace) -> list[Path]:
    """Every file the command reads (facts, waivers, profile, rules), which ``--output`` must not replace."""
    files = [p for p in (getattr(args, "facts", None), getattr(args, "waivers", None)) if p is not None]
    profile: str | None = getattr(args, "profile", None)
    if profile:
        from pccguard.policy.profiles import shipped_profiles

        files.append(shipped_profiles().get(profile, Path(profile)))
    rules_dirs: list[Path] | None = getattr(args, "rules_dirs", None)
    if rules_dirs is not None:
        from pccguard.files.resources import shipped_rules_dir

        files += [rule for folder in [shipped_rules_dir(), *rules_dirs] for rule in folder.rglob("*.rego")]
    return files


def cmd_check(args: argparse.Namespace, engine_args: list[str] | None) -> int:
    inputs = _input_files(args)
    if args.output is not None:
        check_output(args.output, inputs=inputs)  # before any work: a bad -o fails fast
    facts = _collect_facts(args, engine_args)
    report = _policy_settings(args).open().evaluate(facts)
    if args.opa_url and report.has_errors():
        # A central server that cannot answer is an input/engine error, not a report.
        raise PccguardError(report.problems[0] if report.problems else "OPA server error")
    from pccguard.reports import render

    if args.format == "table":
        from pccguard.reports.table import render_table

        to_terminal = args.output is None and sys.stdout.isatty()
        color = to_terminal and not args.no_color and "NO_COLOR" not in os.environ
        text = render_table(report, color=color, width=_table_width(to_terminal), show_all=args.show_all)
    elif args.format == "sarif":
        from pccguard.reports.sarif import render_sarif

        artifact = str(args.facts) if args.facts is not None else None
        text = render_sarif(report, source_root=Path.cwd(), artifact=artifact)
    else:
        text = render(report, args.format)
    emit(text, args.output, inputs=inputs)
    return report.exit_code()


#: Narrower than this, even the indented list layout of the table has no room for a word per line.
_MIN_TABLE_WIDTH = 20


def _table_width(to_terminal: bool) -> int | None:
    """The width to render the check table at: the terminal's, else ``COLUMNS`` when set, else the default.

    A pipe or a file has no width of its own; ``COLUMNS`` in the environment is
    the one way a caller (a CI job, ``COLUMNS=200 pccguard check ... | less``)
    can ask for one, so it is honoured there too. Nonsense values fall back to
    the table's default instead of failing the report.
    """
    if to_terminal:
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), _MIN_TABLE_WIDTH)
    return None


def cmd_facts(args: argparse.Namespace, engine_args: list[str] | None) -> int:
    from pccguard.facts.load import facts_document

    facts = _collect_facts(args, engine_args)
    # Only input fields: the output is a facts file that ``pccguard check`` reads back as it is.
    emit(json.dumps(facts_document(facts), indent=2, sort_keys=True), args.output, inputs=_input_files(args))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from pccguard.facts.model import facts_json_schema

    emit(json.dumps(facts_json_schema(), indent=2, sort_keys=True), args.output)
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from pccguard.facts.catalog import load_catalog

    catalog = load_catalog()
    if args.format == "json":
        emit(catalog.model_dump_json(indent=2), None)
        return 0
    rows = [
        [row.id, row.category, " ".join(row.endangers) or "-", "\n".join(row.mitigations), row.title]
        for row in catalog.optimizations
    ]
    rows += [
        [risk.id, "observability", " ".join(risk.endangers) or "-", "\n".join(risk.mitigations), risk.title]
        for risk in catalog.observability
    ]
    _print_id_table("PCC optimization catalog", ("id", "category", "endangers", "mitigations"), "title", rows)
    return 0


#: Narrowest useful width of the one free-text column of an id table before the rows become blocks.
_MIN_TEXT_WIDTH = 20


def _print_id_table(title: str, id_columns: Sequence[str], text_column: str, rows: list[list[str]]) -> None:
    """Print rows whose first columns are identifiers, never cut, and whose last column is free text.

    Rule, catalog and mitigation ids are what a rule author copies into a rule
    file or a profile, so they are never wrapped, folded or ellipsised; only
    the text column wraps (a cell may hold several ids, one per line). When the
    console is too narrow for the ids plus a readable text column, each row
    becomes a block instead (ids on one line, the text indented below), which a
    console can wrap between ids but never inside one. The console honours
    ``COLUMNS``, so piped output can be made as wide as wanted.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    widths = [
        max([len(column), *(len(line) for row in rows for line in row[index].splitlines())])
        for index, column in enumerate(id_columns)
    ]
    # Each column of the default box takes its padding (2) and one rule; plus the left edge.
    needed = sum(widths) + _MIN_TEXT_WIDTH + 3 * (len(id_columns) + 1) + 1
    if console.width >= needed:
        table = Table(title=title)
        for column in id_columns:
            table.add_column(column, no_wrap=True)
        table.add_column(text_column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return

    # Wrapped here, between words only, and printed without rich's wrapping or cropping (soft_wrap):
    # an id longer than the console overflows the line rather than losing its tail.
    def lines(words: list[str], indent: str, gap: str = " ") -> list[str]:
        return textwrap.wrap(
            gap.join(words),
            width=max(console.width, 1),
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [indent]

    console.print(Text(title, style="bold"), soft_wrap=True)
    console.print(Text(f"{'  '.join(id_columns)} / {text_column}", style="dim"), soft_wrap=True)
    for row in rows:
        ids = [cell.replace("\n", ", ") for cell in row[: len(id_columns)]]
        for line in lines(ids, "", gap="  "):
            console.print(Text(line, style="bold"), soft_wrap=True)
        for line in lines(row[-1].split(), "    "):
            console.print(Text(line), soft_wrap=True)


def cmd_rules(args: argparse.Namespace) -> int:
    action = args.rules_command
    if action is None:
        raise UsageError("rules needs an action: list, lint, test, explain, new, bundle")
    if action == "new":
        from pccguard.authoring.scaffold import scaffold_rule

        written = scaffold_rule(
            args.rule_id,
            args.dir,
            requirement=args.requirement,
            optimization=args.optimization,
            severity=args.severity,
            mitigation=args.mitigation,
            title=args.title,
        )
        for path in written:
            print(f"wrote {path}")
        return 0
    if action == "lint":
        return _rules_lint(args.rules_dirs)
    from pccguard.policy.rulebook import load_rulebook

    rulebook = load_rulebook(args.rules_dirs)
    if action == "list":
        return _rules_list(rulebook, args.format)
    if action == "test":
        return _rules_test(rulebook, set(args.rule), _limits(args))
    if action == "explain":
        return _rules_explain(rulebook, args.rule_id)
    if action == "bundle":
        from pccguard.policy.bundle import write_bundle
        from pccguard.policy.engines.embedded import EmbeddedEngine

        EmbeddedEngine(rulebook.modules())  # refuse to ship a rulebook that does not compile
        written = write_bundle(rulebook, args.out)
        print(f"wrote OPA bundle {args.out} ({len(written)} files, root 'pcc', query data.pcc.decision)")
        return 0
    raise UsageError(f"unknown rules action {action!r}")


def _rules_list(rulebook: Rulebook, fmt: str) -> int:
    rules = rulebook.sorted_rules()
    if fmt == "json":
        emit(json.dumps([r.model_dump(mode="json") for r in rules], indent=2, sort_keys=True), None)
        return 0
    rows = [[r.id, r.requirement, r.severity, r.optimization, r.mitigation, r.title] for r in rules]
    _print_id_table(
        f"{len(rules)} rules", ("id", "req", "severity", "optimization", "mitigation"), "title", rows
    )
    return 0


def _rules_lint(rules_dirs: list[Path]) -> int:
    from pccguard.authoring.lint import lint_rules

    problems = lint_rules(rules_dirs)
    for problem in problems:
        print(str(problem) + (" (warning)" if problem.severity == "warning" else ""))
    errors = [p for p in problems if p.severity == "error"]
    warnings = len(problems) - len(errors)
    print(f"rules lint: {len(errors)} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _rules_test(rulebook: Rulebook, only: set[str], limits: EvalLimits) -> int:
    from pccguard.authoring.fixtures import discover, missing_coverage, run_fixtures
    from pccguard.policy.engines.embedded import EmbeddedEngine

    unknown = sorted(only - set(rulebook.rules))
    if unknown:
        raise UsageError(f"unknown rule id(s): {', '.join(unknown)}")
    fixtures = discover(rulebook, only or None)
    engine = EmbeddedEngine(rulebook.modules(), limits)
    outcomes = run_fixtures(rulebook, engine, fixtures)
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        fx = outcome.fixture
        print(
            f"FAIL {fx.rule_id} {fx.path}: expected {fx.expect.value}, got {outcome.actual.value}: {outcome.detail}"
        )
    coverage = missing_coverage(rulebook, fixtures) if not only else []
    for problem in coverage:
        print(f"MISSING {problem}")
    passed = len(outcomes) - len(failed)
    print(f"{passed} passed, {len(failed) + len(coverage)} failed")
    return 1 if failed or coverage else 0


def _rules_explain(rulebook: Rulebook, rule_id: str) -> int:
    from pccguard.authoring.fixtures import discover
    from pccguard.facts.catalog import load_catalog

    if rule_id not in rulebook.rules:
        raise UsageError(f"unknown rule id {rule_id!r} (see 'pccguard rules list')")
    meta = rulebook.rules[rule_id]
    # The file as it lies on disk, absolute: reports name shipped rules ``rules/...`` for
    # stability, but a path printed here is one to open or copy, from whatever directory.
    source = next((f.path for f in rulebook.rule_files if f.meta is not None and f.meta.id == rule_id), None)
    shown = Path(source).resolve() if source is not None else Path(meta.path)
    catalog = load_catalog()
    lines = [
        f"{meta.id}: {meta.title}",
        f"  requirement  {meta.requirement} ({catalog.requirements[meta.requirement].title})",
        f"  severity     {meta.severity}",
        f"  about        {meta.optimization} ({catalog.title_of(meta.optimization)})",
        f"  mitigation   {meta.mitigation}",
        f"  threats      {'; '.join(meta.threats)}",
        f"  references   {'; '.join(meta.references)}",
        f"  message      {meta.message}",
        f"  file         {shown}:{meta.line}",
        "",
        *("  " + line for line in meta.description.splitlines()),
    ]
    if meta.remediation:
        lines += ["", "  remediation: " + meta.remediation]
    fixtures = discover(rulebook, {rule_id})
    lines += ["", f"  fixtures ({len(fixtures)}):"] + [f"    {f.expect.value:15} {f.path}" for f in fixtures]
    print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------- entry point


def run(argv: Sequence[str]) -> int:
    own, engine_args = _split_engine_args(list(argv))
    args = build_parser().parse_args(own)
    if args.command is None:
        raise UsageError("no command given (try 'pccguard check examples/vllm-multitenant-default.yaml')")
    if args.command in ("check", "facts"):
        handler = cmd_check if args.command == "check" else cmd_facts
        return handler(args, engine_args)
    if engine_args is not None:
        raise UsageError(f"'{args.command}' takes no engine arguments after '--'")
    if args.command == "probe":
        exit_code: int = args.probe_handler(args)
        return exit_code
    if args.command == "scan":
        scan_code: int = args.scan_handler(args)
        return scan_code
    if args.command == "log":
        log_code: int = args.log_handler(args)
        return log_code
    handlers = {"schema": cmd_schema, "catalog": cmd_catalog, "rules": cmd_rules}
    return handlers[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except PccguardError as exc:
        print(f"pccguard: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pccguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # fail closed with one line; PCCGUARD_DEBUG=1 shows the traceback
        if os.environ.get("PCCGUARD_DEBUG"):
            raise
        detail = " ".join(str(exc).split())[:300]
        print(f"pccguard: internal error: {type(exc).__name__}: {detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = ["InputError", "build_parser", "main", "run"]
