"""The SGLang 0.5.23 log records ``allowlist_logs`` lets through, besides pccguard's own and uvicorn's.

SGLang formats most of its lines itself (f-strings), so only fixed lines can
be named. Left out on purpose: the request logger's targets (whole requests
and outputs) and the scheduler's batch lines (their cached-token counts are a
cache-hit oracle). Operators add records with ``mitigations.log_allowlist`` in
the plugin configuration.
"""

from __future__ import annotations

from pccguard.enforcement.log_allowlist import LogTemplate

TEMPLATES = (LogTemplate("sglang.srt.entrypoints.http_server", "The server is fired up and ready to roll!"),)
