"""``pccguard log init|append|checkpoint|prove|verify``: the transparency log from the command line.

Every failure -- a missing or foreign log, a checkpoint that does not verify,
a tile that does not match its entries, a second writer, a bad argument -- is
one line and exit 2; nothing prints "verified" unless every check ran and held.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
from pathlib import Path
from typing import Any

from pccguard.errors import UsageError

from .log import TransparencyLog, load_signer, read_vkey

_ORIGIN = re.compile(r"^[^\s+]{1,200}$")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``log`` command; its handler is ``args.log_handler(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "log",
        help="the transparency log: C2SP tiles under a signed checkpoint",
        description="An append-only transparency log in the C2SP tlog-tiles layout, with RFC 6962 hashing and "
        "a C2SP signed-note checkpoint. Exit 0 done (verified), 2 error.",
    )
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="create a log and, unless --key names one, its signing key")
    init.add_argument("dir", type=Path)
    init.add_argument("--origin", help="the log's origin line and key name (default: pccguard.local/DIRNAME)")
    init.add_argument("--key", type=Path, metavar="FILE", help="a signer key file (PRIVATE+KEY+...) to use")
    append = sub.add_parser("append", help="add each FILE as one entry and sign the new checkpoint")
    append.add_argument("dir", type=Path)
    append.add_argument("files", nargs="+", type=Path, metavar="FILE")
    append.add_argument("--key", type=Path, metavar="FILE", help="the signer key (default: DIR/log.key)")
    point = sub.add_parser("checkpoint", help="print the current checkpoint once its signature verifies")
    point.add_argument("dir", type=Path)
    point.add_argument(
        "--trusted-key", type=Path, metavar="FILE", help="verifier key (default: DIR/log.vkey)"
    )
    prove = sub.add_parser("prove", help="print an inclusion (and optionally consistency) proof as JSON")
    prove.add_argument("dir", type=Path)
    prove.add_argument("index", type=int)
    prove.add_argument("--size", type=int, help="the tree size to prove against (default: the checkpoint's)")
    prove.add_argument("--from-size", type=int, metavar="N", help="also prove consistency from size N")
    verify = sub.add_parser("verify", help="check the checkpoint and every tile against the entries")
    verify.add_argument("dir", type=Path)
    verify.add_argument(
        "--trusted-key", type=Path, metavar="FILE", help="verifier key (default: DIR/log.vkey)"
    )
    parser.set_defaults(log_handler=run)
    return parser


def _trusted(args: argparse.Namespace) -> Any:
    return read_vkey(args.trusted_key) if getattr(args, "trusted_key", None) is not None else None


def run(args: argparse.Namespace) -> int:
    action = args.log_command
    if action == "init":
        origin = args.origin or f"pccguard.local/{args.dir.resolve().name}"
        if not _ORIGIN.match(origin):
            raise UsageError("--origin must be 1 to 200 characters without spaces or '+'")
        log = TransparencyLog.init(args.dir, origin, args.key)
        print(f"created the log {origin} at {args.dir}; its verifier key: {log.verifier.encode()}")
        return 0
    log = TransparencyLog.open(args.dir, _trusted(args))
    if action == "append":
        entries = []
        for path in args.files:
            try:
                entries.append(path.read_bytes())
            except OSError as exc:
                raise UsageError(f"cannot read the entry: {exc.strerror}", where=str(path)) from None
        point = log.append(entries, load_signer(args.dir, args.key))
        print(f"appended entries {point.size - len(entries)} to {point.size - 1}; size {point.size}")
        return 0
    if action == "checkpoint":
        log.checkpoint()
        print((args.dir / "checkpoint").read_text(encoding="utf-8"), end="")
        return 0
    if action == "prove":
        current = log.checkpoint().size
        size = current if args.size is None else args.size
        if args.size is not None and not 0 < size <= current:
            raise UsageError(f"--size must be from 1 to the checkpoint's size {current}")
        out: dict[str, Any] = {"inclusion": log.prove(args.index, size).to_json()}
        if args.from_size is not None:
            if not 0 < args.from_size <= size:
                raise UsageError(f"--from-size must be from 1 to {size}")
            proof = log.consistency(args.from_size, size)
            out["consistency"] = {
                "size1": args.from_size,
                "size2": size,
                "proof": [base64.b64encode(p).decode() for p in proof],
            }
        print(json.dumps(out, indent=2))
        return 0
    point = log.verify()
    print(f"verified: {point.origin}, size {point.size}, root {base64.b64encode(point.root).decode()}")
    return 0
