"""CLI: ``python -m pccguard.enclave_runtime.attacks --transcript T.npz --model BASE --adapter LORA``.

``--model`` is the public base (the attacker's prior); ``--adapter`` the private
adapter, used only to score the estimates; ``--prompts`` the attacker's chosen
prompts (JSON list of ``{"prompt", "max_new", "label"}``) for the linear probe.
Exit status 0; ``--json`` prints machine-readable rows.
"""

from __future__ import annotations

import argparse
import json
import sys

from pccguard.enclave_runtime.attacks.suite import format_table, run_suite
from pccguard.errors import PccguardError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pccguard.enclave_runtime.attacks", description=__doc__)
    parser.add_argument(
        "--transcript", required=True, help="transcript .npz recorded on the accelerator side"
    )
    parser.add_argument("--model", required=True, help="public base model directory (the attacker's prior)")
    parser.add_argument("--adapter", required=True, help="private adapter directory (scoring only)")
    parser.add_argument("--prompts", help="JSON file of the attacker's chosen prompts, for the probe")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        rows, probe = run_suite(args.transcript, args.model, args.adapter, args.prompts)
    except (PccguardError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = {
            "attacks": [r.as_dict() for r in rows],
            "probe": None if probe is None else {**probe.__dict__, "at_chance": probe.at_chance},
        }
        print(json.dumps(out, indent=2))
    else:
        print(format_table(rows, probe))
    return 0


if __name__ == "__main__":
    sys.exit(main())
