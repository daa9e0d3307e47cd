"""The transparency log at 10^6 entries: appending, and what a client's verification costs.

Builds a log of ``--entries`` entries (default 10^6) in a temporary directory
with ``TransparencyLog.append`` in batches (each append fsyncs its tiles and
checkpoint, as in use), then times, over ``--rounds`` random entries, what a
client does with a served statement: open the checkpoint note, verify an
inclusion proof against it, and verify consistency with an older checkpoint
(the log serves the proofs; their generation is timed too). Prints a table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import print_table
from pccguard.transparency import merkle
from pccguard.transparency.log import TransparencyLog, load_signer
from pccguard.transparency.note import Checkpoint, open_note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=65_536)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = TransparencyLog.init(Path(tmp) / "log", "pccguard.bench/log")
        signer = load_signer(log.root, None)
        started = time.perf_counter()
        older: Checkpoint | None = None
        size = 0
        while size < args.entries:
            n = min(
                args.batch if size else 12_345, args.entries - size
            )  # an odd first batch: sizes off powers of 2
            point = log.append([f"statement-{i}".encode() for i in range(size, size + n)], signer)
            size = point.size
            if older is None and size >= args.entries // 2:
                older = point
        build = time.perf_counter() - started
        one = []
        for i in range(20):  # one statement appended to the full log, as an engine start does
            t = time.perf_counter()
            log.append([f"statement-extra-{i}".encode()], signer)
            one.append(time.perf_counter() - t)
        note = (log.root / "checkpoint").read_text(encoding="utf-8")
        point = log.checkpoint()
        assert older is not None
        rng = random.Random(0)
        serve, check = [], []
        for _ in range(args.rounds):
            index = rng.randrange(point.size)
            t = time.perf_counter()
            proof = log.prove(index, point.size)
            consistency = log.consistency(older.size, point.size)
            serve.append(time.perf_counter() - t)
            t = time.perf_counter()
            opened = Checkpoint.parse(open_note(note, [log.verifier]).text)
            merkle.verify_inclusion(index, opened.size, proof.leaf_hash, proof.path, opened.root)
            merkle.verify_consistency(older.size, opened.size, consistency, older.root, opened.root)
            check.append(time.perf_counter() - t)
    ms = 1e3
    print_table(
        f"transparency log, {point.size:,} entries",
        ["measure", "value"],
        [
            (f"build (batches of {args.batch})", f"{build:.1f} s"),
            ("append one entry to the full log (median of 20)", f"{statistics.median(one) * ms:.1f} ms"),
            (
                "serve: inclusion + consistency proof from the tiles (median)",
                f"{statistics.median(serve) * ms:.2f} ms",
            ),
            (
                "client: checkpoint signature + both proofs (median)",
                f"{statistics.median(check) * ms:.3f} ms",
            ),
            (f"client: max over {args.rounds} rounds", f"{max(check) * ms:.3f} ms"),
            ("proof lengths (inclusion, consistency)", f"{len(proof.path)}, {len(consistency)}"),
        ],
    )


if __name__ == "__main__":
    main()
