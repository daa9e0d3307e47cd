"""``--format json``: the ``Report`` itself, in a stable, versioned serialization.

The document is exactly ``Report.model_dump(mode="json")`` with results in
rule-id order and every object's keys sorted, so that

* it round-trips: ``Report.model_validate_json(text)`` gives the report back
  (the models forbid unknown keys, so any extra key here would break that);
* it diffs cleanly: the same report always gives byte-identical text, which
  lets CI store it and compare runs;
* consumers version on ``schema_version``; rule metadata (``results[].rule``)
  and the per-requirement summary (``requirements``) are part of the model.

Nothing is added that the report does not hold: no timestamps, no host names.
"""

from __future__ import annotations

import json

from pccguard.evaluation.results import Report
from pccguard.reports._common import requirement_summaries, results_by_id


def stable_report(report: Report) -> Report:
    """The same report with results in rule-id order and requirements in S, E, T, P, V order."""
    return report.model_copy(
        update={"results": results_by_id(report), "requirements": requirement_summaries(report)}
    )


def render_json(report: Report) -> str:
    """Pretty-printed JSON with sorted keys and a trailing newline."""
    data = stable_report(report).model_dump(mode="json")
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
