"""Full-rulebook decision latency on the embedded engine (compile once, then evaluate).

Target: median ≤ 15 ms for one deployment. Prints compile time and the
distribution of evaluation times for a non-compliant and a compliant example.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table

from pccguard.evaluation.evaluator import Evaluator
from pccguard.facts.load import load_facts
from pccguard.policy.engines.embedded import EmbeddedEngine
from pccguard.policy.profiles import load_profile
from pccguard.policy.rulebook import load_rulebook

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RUNS = 200


def main() -> None:
    rulebook = load_rulebook()
    start = time.perf_counter()
    engine = EmbeddedEngine(rulebook.modules())
    compile_ms = (time.perf_counter() - start) * 1000
    evaluator = Evaluator(rulebook, load_profile("pcc-strict", rulebook), engine)
    rows = []
    for name in ("vllm-multitenant-default.yaml", "vllm-hardened.yaml"):
        facts = load_facts(EXAMPLES / name)
        evaluator.evaluate(facts)  # warm
        raw, full = [], []
        input_doc = evaluator.input_document(facts)
        for _ in range(RUNS):
            t0 = time.perf_counter()
            engine.evaluate(input_doc)
            t1 = time.perf_counter()
            evaluator.evaluate(facts)
            t2 = time.perf_counter()
            raw.append((t1 - t0) * 1000)
            full.append((t2 - t1) * 1000)
        for label, series in (("engine decision", raw), ("decision + verdicts", full)):
            q = statistics.quantiles(series, n=100)
            rows.append((name, label, f"{statistics.median(series):.2f}", f"{q[89]:.2f}", f"{q[98]:.2f}"))
    print_table(
        f"Full rulebook ({len(rulebook.rules)} rules), embedded regopy engine, {RUNS} runs; compile {compile_ms:.0f} ms",
        ["facts", "what", "median ms", "p90 ms", "p99 ms"],
        rows,
    )


if __name__ == "__main__":
    main()
