"""vLLM 0.33.0's HTTP routes and the binding each one gets at pccguard's tenant boundary.

The table is static so that ``pccguard check --engine vllm`` can report the
routes a configuration serves without building vLLM's app; a test compares it
with the routes of the real ``build_app`` (and of the pooling and speech
routers) so that a version bump cannot add a route unseen. At run time the
boundary binds the live app's routes by this table and gives any route it does
not list the prompt policy (see ``pccguard.enforcement.tenancy.routes``).

``when`` names the condition under which vLLM registers a route:
``generate`` / ``pooling`` / ``transcription`` / ``realtime`` (the model's
tasks), ``dev_mode`` (``VLLM_SERVER_DEV_MODE=1``), ``fault_tolerance``
(``--enable-fault-tolerance``) and ``docs`` (FastAPI's docs, unless
``--disable-fastapi-docs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pccguard.enforcement.tenancy.routes import Binding, RouteSpec, RouteTable, spec

PUBLIC, TENANT, ADMIN, REFUSED, PROMPT = (
    Binding.PUBLIC,
    Binding.TENANT,
    Binding.ADMIN,
    Binding.REFUSED,
    Binding.PROMPT,
)

_ROUTES: tuple[RouteSpec, ...] = (
    spec("/openapi.json", "GET", PUBLIC, when="docs"),
    spec("/docs", "GET", PUBLIC, when="docs"),
    spec("/docs/oauth2-redirect", "GET", PUBLIC, when="docs"),
    spec("/redoc", "GET", PUBLIC, when="docs"),
    spec("/load", "GET", PUBLIC),
    spec("/version", "GET", PUBLIC),
    spec("/kv_event_sources", "GET", PUBLIC),
    spec("/health", "GET", PUBLIC),
    spec(
        "/metrics", "GET", PUBLIC, why="served without the cache-hit series under disable:cache_hit_metrics"
    ),
    spec("/metrics", "*", PUBLIC, why="prometheus ASGI mount"),
    spec("/v1/models", "GET", PUBLIC),
    spec("/ping", "GET POST", PUBLIC),
    spec("/tokenize", "POST", TENANT),
    spec("/detokenize", "POST", TENANT),
    spec("/tokenizer_info", "GET", TENANT, when="tokenizer_info"),
    spec("/v1/systemone", "POST", PROMPT, prompt=True),
    spec("/v1/decisions", "POST", PROMPT, prompt=True),
    spec(
        "/invocations",
        "POST",
        PROMPT,
        prompt=True,
        why="SageMaker: dispatches to every generate and pooling type",
    ),
    # generate
    spec("/v1/chat/completions", "POST", PROMPT, prompt=True, when="generate"),
    spec("/v1/chat/completions/batch", "POST", PROMPT, prompt=True, when="generate"),
    spec("/v1/responses", "POST", PROMPT, prompt=True, when="generate"),
    spec(
        "/v1/responses/{response_id}",
        "GET",
        TENANT,
        when="generate",
        why="refused while the response store is on",
    ),
    spec("/v1/responses/{response_id}/cancel", "POST", TENANT, when="generate"),
    spec("/v1/completions", "POST", PROMPT, prompt=True, when="generate"),
    spec("/v1/messages", "POST", PROMPT, prompt=True, when="generate"),
    spec("/v1/messages/count_tokens", "POST", TENANT, when="generate"),
    spec("/generative_scoring", "POST", PROMPT, prompt=True, when="generate"),
    spec("/scale_elastic_ep", "POST", ADMIN, when="generate"),
    spec("/is_scaling_elastic_ep", "POST", PUBLIC, when="generate"),
    spec("/v1/chat/completions/render", "POST", TENANT, when="generate"),
    spec("/v1/messages/render", "POST", TENANT, when="generate"),
    spec("/v1/completions/render", "POST", TENANT, when="generate"),
    spec("/v1/responses/render", "POST", TENANT, when="generate"),
    spec("/v1/chat/completions/derender", "POST", TENANT, when="generate"),
    spec("/v1/completions/derender", "POST", TENANT, when="generate"),
    spec("/inference/v1/generate", "POST", PROMPT, prompt=True, when="generate"),
    spec("/inference/v1/abort_requests", "POST", ADMIN, when="generate", why="aborts any request by its id"),
    # pooling
    spec("/pooling", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/classify", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/v1/embeddings", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/v2/embed", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/score", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/v1/score", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/rerank", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/v1/rerank", "POST", PROMPT, prompt=True, when="pooling"),
    spec("/v2/rerank", "POST", PROMPT, prompt=True, when="pooling"),
    # speech: multipart bodies and websocket frames carry no salt pccguard can set
    spec(
        "/v1/audio/transcriptions", "POST", REFUSED, prompt=True, when="transcription", why="multipart body"
    ),
    spec("/v1/audio/translations", "POST", REFUSED, prompt=True, when="transcription", why="multipart body"),
    spec("/v1/realtime", "WEBSOCKET", REFUSED, prompt=True, when="realtime", why="websocket frames"),
    # VLLM_SERVER_DEV_MODE (and its RL routes)
    *(
        spec(path, method, ADMIN, when="dev_mode")
        for method, path in (
            ("GET", "/server_info"),
            ("POST", "/reset_prefix_cache"),
            ("POST", "/reset_mm_cache"),
            ("POST", "/reset_encoder_cache"),
            ("POST", "/sleep"),
            ("POST", "/wake_up"),
            ("GET", "/is_sleeping"),
            ("POST", "/collective_rpc"),
            ("POST", "/pause"),
            ("POST", "/resume"),
            ("GET", "/is_paused"),
            ("POST", "/abort_requests"),
            ("POST", "/release_kv_cache_memory"),
            ("GET", "/get_world_size"),
            ("GET", "/weight_info"),
            ("POST", "/init_weight_transfer_engine"),
            ("POST", "/shutdown_weight_transfer_engine"),
            ("POST", "/start_weight_update"),
            ("POST", "/start_draft_weight_update"),
            ("POST", "/finish_weight_update"),
            ("POST", "/update_weights"),
            ("POST", "/update_weight_version"),
            ("POST", "/weight_checker"),
        )
    ),
    # VLLM_ALLOW_RUNTIME_LORA_UPDATING: loads code paths and weights into the server every tenant uses
    spec("/v1/load_lora_adapter", "POST", ADMIN, when="runtime_lora"),
    spec("/v1/unload_lora_adapter", "POST", ADMIN, when="runtime_lora"),
    # the same two handlers under SageMaker's adapter routes (model_hosting_container_standards)
    spec("/adapters", "POST", ADMIN, when="runtime_lora"),
    spec("/adapters/{adapter_name}", "DELETE", ADMIN, when="runtime_lora"),
    # --profiler-config with a profiler: vLLM mounts the routes that start and stop it
    spec("/start_profile", "POST", ADMIN, when="profiler", why="profiles every tenant's requests"),
    spec("/stop_profile", "POST", ADMIN, when="profiler"),
    spec("/fault_tolerance/status", "GET", ADMIN, when="fault_tolerance"),
    spec("/fault_tolerance/apply", "POST", ADMIN, when="fault_tolerance"),
)

ROUTE_TABLE = RouteTable(engine="vllm", version="0.33.0", specs=_ROUTES)

#: Paths refused while vLLM's response store is on: it is keyed by response id alone, shared by all tenants.
RESPONSE_STORE_PATHS = frozenset({"/v1/responses/{response_id}", "/v1/responses/{response_id}/cancel"})


def route_conditions(config: Any, frontend: Any, environ: Mapping[str, str]) -> dict[str, bool]:
    """The ``when`` conditions of :data:`ROUTE_TABLE` for a resolved configuration and ``vllm serve`` args."""
    runner = str(getattr(getattr(config, "model_config", None), "runner_type", "generate"))
    return {
        "generate": runner == "generate",
        "pooling": runner == "pooling",
        "transcription": False,  # speech models only; the live app shows them when served
        "realtime": False,
        "dev_mode": _true(environ.get("VLLM_SERVER_DEV_MODE", "")),
        "fault_tolerance": bool(getattr(frontend, "enable_fault_tolerance", False)),
        "runtime_lora": _true(environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "")),
        "tokenizer_info": bool(getattr(frontend, "enable_tokenizer_info_endpoint", False)),
        "profiler": getattr(getattr(config, "profiler_config", None), "profiler", None) is not None,
        "docs": not bool(getattr(frontend, "disable_fastapi_docs", False)),
    }


#: How the environment switches of vLLM that pccguard reads are spelled "on".
TRUTHY = frozenset({"1", "true", "yes", "on"})


def _true(value: str) -> bool:
    return value.strip().lower() in TRUTHY
