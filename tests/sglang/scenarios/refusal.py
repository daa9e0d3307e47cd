"""Scenario: the plugin refuses to start SGLang's real ``Engine``.

Cases (one process, one Engine attempt each): a configuration the policy denies
(client-executed logit processors), a pccguard configuration that does not
validate, and a rules directory whose rule does not compile. ``Engine`` must
raise before any scheduler process starts.
"""

from __future__ import annotations

import json
import os
import sys
import time

from _common import cpu_engine, report


def attempt(model: str, config: str, **extra: object) -> dict[str, object]:

    os.environ["PCCGUARD_CONFIG"] = config
    started = time.monotonic()
    try:
        engine = cpu_engine(model, **extra)
    except Exception as exc:  # the refusal
        return {
            "refused": True,
            "error": type(exc).__name__,
            "message": str(exc)[:600],
            "seconds": round(time.monotonic() - started, 1),
        }
    engine.shutdown()
    return {"refused": False}


def main() -> None:
    model, cases = sys.argv[1], json.loads(sys.argv[3])
    report({name: attempt(model, case["config"], **case.get("extra", {})) for name, case in cases.items()})


if __name__ == "__main__":
    main()
