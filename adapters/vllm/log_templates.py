"""The vLLM 0.33.0 log records ``allowlist_logs`` lets through, besides pccguard's own and uvicorn's.

Start-up milestones whose arguments are sizes, times and addresses. Left out on
purpose: the request logger (sampling parameters, output text), the periodic
stats line (it carries the prefix-cache hit rate, a cache-hit oracle), and the
engine configuration dump (free text). Operators add records with
``mitigations.log_allowlist`` in the plugin configuration.
"""

from __future__ import annotations

from pccguard.enforcement.log_allowlist import LogTemplate

#: Where vLLM's request logger writes (the content ``allowlist_logs`` exists to keep out).
REQUEST_LOGGER = "vllm.entrypoints.serve.utils.request_logger"

TEMPLATES = (
    LogTemplate("vllm.entrypoints.launchers.api_server.entry", "Starting vLLM server on %s"),
    LogTemplate("vllm.v1.engine.core", "init engine (profile, create kv cache, warmup model) took %.2f s"),
    LogTemplate(
        "vllm.v1.core.kv_cache_utils",
        "%s KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx",
    ),
)
