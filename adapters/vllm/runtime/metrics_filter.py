"""``disable:cache_hit_metrics`` for ``vllm serve``: drop hit-oracle series from ``/metrics``.

vLLM serves ``/metrics`` without the API key, and several of its series
answer "was that prefix cached?" for anyone who reads them before and after a
probe on a quiet server (PCC-T-011): the hit and query counters of every cache
tier, the cached-prompt-token counters, the tokens computed per engine step
(a hit computes fewer) and KV cache occupancy (a hit allocates fewer new
blocks). The tenant middleware passes ``GET /metrics`` through
:func:`drop_series`, which removes those families -- their ``# HELP`` and
``# TYPE`` lines and every sample, including ``_total``, ``_bucket``,
``_sum``, ``_count`` and ``_created`` -- and leaves every other series as
vLLM wrote it. The request's ``Accept-Encoding`` is removed first so the body
arrives uncompressed and can be filtered.
"""

from __future__ import annotations

#: Metric families that reveal prefix-cache hits (matched on the family name).
HIT_ORACLE_FAMILIES = (
    "vllm:prefix_cache_hits",
    "vllm:prefix_cache_queries",
    "vllm:external_prefix_cache_hits",
    "vllm:external_prefix_cache_queries",
    "vllm:mm_cache_hits",
    "vllm:mm_cache_queries",
    "vllm:prompt_tokens_cached",
    "vllm:prompt_tokens_cached_by_source",
    "vllm:prompt_tokens_by_source",
    "vllm:iteration_tokens_total",
    "vllm:kv_cache_usage_perc",
)
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
_DROPPED = frozenset(f + s for f in HIT_ORACLE_FAMILIES for s in _SUFFIXES)


def _metric_name(line: bytes) -> bytes:
    """The metric name a Prometheus/OpenMetrics text line is about (empty for other comments)."""
    if line.startswith((b"# HELP ", b"# TYPE ", b"# UNIT ")):
        return line.split(b" ", 3)[2] if line.count(b" ") >= 2 else b""
    if line.startswith(b"#"):
        return b""
    end = len(line)
    for sep in (b"{", b" "):
        i = line.find(sep)
        if i != -1:
            end = min(end, i)
    return line[:end]


def drop_series(body: bytes) -> bytes:
    """``body`` without the lines of :data:`HIT_ORACLE_FAMILIES`."""
    kept = [
        line for line in body.split(b"\n") if _metric_name(line).decode("latin-1", "replace") not in _DROPPED
    ]
    return b"\n".join(kept)
