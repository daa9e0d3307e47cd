"""``pccguard scan PATH... --canary TEXT``: arguments, their checks, and the run.

Bad arguments (no canary, a canary too short to search, malformed ids, an
unloadable tokenizer, a bad output path) are a ``UsageError`` raised before
anything is read or written: one line, exit 2. The report goes to stdout or,
with ``-o``, to a file written atomically, so a failed run leaves no partial
file. Exit status: 0 clean, 1 found, 2 error. Only the standard library is
imported at load time: ``pccguard`` builds its whole parser on every start.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pccguard.errors import UsageError
from pccguard.files.output import check_output, emit

from .canaries import Canary, parse_ids, patterns, text_canary, tokenized
from .search import DEFAULT_CHUNK_BYTES, scan

FORMATS = ("table", "json", "sarif")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths", nargs="+", type=Path, help="files or directories to scan (directories recursively)"
    )
    p.add_argument(
        "--canary",
        action="append",
        default=[],
        metavar="TEXT",
        help="a planted canary string (repeatable; at least 8 characters)",
    )
    p.add_argument(
        "--canary-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="canaries one per line, as pccguard probe --plant writes them (repeatable)",
    )
    p.add_argument(
        "--canary-ids",
        action="append",
        default=[],
        metavar="IDS",
        help="a planted canary as the model's token ids, e.g. 1234,5678,91,1011 (repeatable; at least 4)",
    )
    p.add_argument(
        "--tokenizer",
        type=Path,
        metavar="PATH",
        help="tokenizer.json (or its model directory): also search each --canary as the model's token ids",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="report format (default: %(default)s)")
    p.add_argument(
        "-o", "--output", metavar="PATH", help="write the report here (atomically) instead of stdout"
    )
    p.add_argument(
        "--chunk-mib",
        type=int,
        default=DEFAULT_CHUNK_BYTES // (1024 * 1024),
        metavar="N",
        help="read files N MiB at a time; memory stays a few chunks, whatever the file size (default: %(default)s)",
    )


def _file_canaries(path: Path) -> list[str]:
    """The non-empty lines of a canary file (``#`` starts a comment line)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read the canary file: {detail}", where=str(path)) from None
    found = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not found:
        raise UsageError("the canary file holds no canary", where=str(path))
    return found


def canaries_from_args(args: argparse.Namespace) -> list[Canary]:
    texts = list(args.canary) + [t for path in args.canary_file for t in _file_canaries(path)]
    canaries = [text_canary(f"canary-{i}", text) for i, text in enumerate(texts, 1)]
    if args.tokenizer is not None:
        if not canaries:
            raise UsageError("--tokenizer needs at least one --canary to encode", where="--tokenizer")
        canaries = tokenized(canaries, args.tokenizer)
    start = len(canaries) + 1
    canaries += [
        Canary(label=f"canary-{i}", text=None, token_ids=(parse_ids(raw),))
        for i, raw in enumerate(args.canary_ids, start)
    ]
    if not canaries:
        raise UsageError(
            "give at least one --canary TEXT, --canary-file FILE or --canary-ids IDS to look for"
        )
    return canaries


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.chunk_mib <= 1024:
        raise UsageError("must be between 1 and 1024", where="--chunk-mib")
    canaries = canaries_from_args(args)
    if args.output is not None and args.output != "-":
        check_output(args.output, inputs=args.paths)
    result = scan(args.paths, patterns(canaries), chunk=args.chunk_mib * 1024 * 1024)
    from .report import render_json, render_sarif, render_table  # rich loads only when a scan runs

    if args.format == "json":
        text = render_json(result, canaries)
    elif args.format == "sarif":
        text = render_sarif(result, canaries)
    else:
        text = render_table(result, canaries)
    emit(text, args.output, inputs=args.paths)
    return result.exit_code


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``scan`` command; its handler is ``args.scan_handler(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scan",
        help="look for planted canaries at rest: offload stores, logs, KV-event captures, dumps",
        description="Scan files and directories for planted canary prompts, as text (UTF-8, UTF-16) and as "
        "the model's token ids (tensors, printed lists). Memory stays a few chunks, whatever the file size. "
        "Exit 0 clean, 1 found, 2 error (a file that cannot be read is an error, never clean).",
    )
    add_arguments(parser)
    parser.set_defaults(scan_handler=run)
    return parser
