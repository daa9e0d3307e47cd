"""SGLang 0.5.23's HTTP routes: the privileged ones and what each can do, and every route's tenant binding.

All 42 are ``ADMIN_OPTIONAL`` in 0.5.23: open to anyone when no key is set,
open to the API key when only ``--api-key`` is set. The list is static so that
``pccguard check`` need not import SGLang's HTTP server; a test compares it with
the live FastAPI app so that a version bump cannot silently drop a route.
The runtime closes routes by their live auth level, not by this list.

:data:`ROUTE_TABLE` gives every route of the 0.5.23 app its binding at the
tenant boundary (``pccguard.enforcement.tenancy``); a test compares it with the live app too.
"""

from __future__ import annotations

from typing import Literal

from pccguard.enforcement.tenancy.routes import Binding, RouteSpec, RouteTable, spec

Purpose = Literal["admin", "weights", "profiler", "debug"]

#: path → purpose, in the order the app registers them.
PRIVILEGED_ROUTES: dict[str, Purpose] = {
    "/set_internal_state": "admin",
    "/flush_cache": "admin",
    "/add_external_corpus": "admin",
    "/remove_external_corpus": "admin",
    "/list_external_corpora": "admin",
    "/hicache/storage-backend/clear": "admin",
    "/hicache/storage-backend": "admin",
    "/start_profile": "profiler",
    "/stop_profile": "profiler",
    "/set_trace_level": "debug",
    "/freeze_gc": "admin",
    "/start_expert_distribution_record": "debug",
    "/stop_expert_distribution_record": "debug",
    "/dump_expert_distribution_record": "debug",
    "/update_weights_from_disk": "weights",
    "/init_weights_send_group_for_remote_instance": "weights",
    "/send_weights_to_remote_instance": "weights",
    "/get_remote_instance_transfer_engine_info": "weights",
    "/remote_instance_transfer_engine_info": "weights",
    "/init_weights_update_group": "weights",
    "/destroy_weights_update_group": "weights",
    "/update_weights_from_tensor": "weights",
    "/begin_weight_update": "weights",
    "/end_weight_update": "weights",
    "/update_weights_from_distributed": "weights",
    "/update_weights_from_ipc": "weights",
    "/update_weight_version": "weights",
    "/get_weights_by_name": "weights",
    "/release_memory_occupation": "admin",
    "/resume_memory_occupation": "admin",
    "/weights_checker": "weights",
    "/slow_down": "admin",
    "/pd_role_switch": "admin",
    "/load_lora_adapter": "weights",
    "/load_lora_adapter_from_tensors": "weights",
    "/unload_lora_adapter": "weights",
    "/configure_logging": "admin",
    "/abort_request": "admin",
    "/pause_generation": "admin",
    "/continue_generation": "admin",
}

#: Routes that change weights or adapters at run time (closed by ``disable:runtime_updates``).
WEIGHT_ROUTES = frozenset(p for p, purpose in PRIVILEGED_ROUTES.items() if purpose == "weights")

#: Route prefixes of the tensor dumper, mounted only with ``DUMPER_SERVER_PORT=reuse``.
DUMPER_PREFIX = "/dumper"


# --------------------------------------------------------------------------- the tenant boundary's table

_PUBLIC, _TENANT, _ADMIN, _REFUSED, _PROMPT = (
    Binding.PUBLIC,
    Binding.TENANT,
    Binding.ADMIN,
    Binding.REFUSED,
    Binding.PROMPT,
)

#: Routes whose requests SGLang 0.5.23 builds as ``EmbeddingReqInput``, which has no ``cache_salt``: with the
#: radix cache on they cannot be kept apart per tenant, and the boundary refuses them.
EMBEDDING_PATHS = frozenset(
    {"/encode", "/classify", "/v1/embeddings", "/v1/classify", "/v1/score", "/v1/rerank"}
)

_ROUTES: tuple[RouteSpec, ...] = (
    spec("/openapi.json", "GET", _PUBLIC),
    spec("/docs", "GET", _PUBLIC),
    spec("/docs/oauth2-redirect", "GET", _PUBLIC),
    spec("/redoc", "GET", _PUBLIC),
    spec("/ready", "GET", _PUBLIC),
    spec("/health", "GET", _PUBLIC),
    spec(
        "/health_generate", "GET", _PUBLIC, why="its one-token probe is refused by the scheduler's salt gate"
    ),
    spec("/get_model_info", "GET", _PUBLIC),
    spec("/model_info", "GET", _PUBLIC),
    spec("/get_server_info", "GET", _PUBLIC),
    spec("/server_info", "GET", _PUBLIC),
    spec("/v1/models", "GET", _PUBLIC),
    spec("/v1/models/{model:path}", "GET", _PUBLIC),
    spec("/", "GET HEAD", _PUBLIC),
    spec("/api/tags", "GET", _PUBLIC),
    spec("/api/show", "POST", _PUBLIC),
    spec("/ping", "GET", _PUBLIC),
    spec("/v1/loads", "GET", _PUBLIC),
    spec("/is_scaling_elastic_ep", "GET", _PUBLIC),
    # prompts
    spec("/generate", "POST PUT", _PROMPT, prompt=True),
    spec("/v1/completions", "POST", _PROMPT, prompt=True),
    spec("/v1/chat/completions", "POST", _PROMPT, prompt=True),
    spec("/v1/responses", "POST", _PROMPT, prompt=True),
    spec("/v1/messages", "POST", _PROMPT, prompt=True),
    spec("/v1/systemone", "POST", _PROMPT, prompt=True),
    spec("/v1/decisions", "POST", _PROMPT, prompt=True),
    spec("/invocations", "POST", _PROMPT, prompt=True),
    spec("/vertex_generate", "POST", _PROMPT, prompt=True),
    spec("/api/chat", "POST", _PROMPT, prompt=True),
    spec("/api/generate", "POST", _PROMPT, prompt=True),
    spec("/encode", "POST PUT", _PROMPT, prompt=True),
    spec("/classify", "POST PUT", _PROMPT, prompt=True),
    spec("/v1/embeddings", "POST", _PROMPT, prompt=True),
    spec("/v1/classify", "POST", _PROMPT, prompt=True),
    spec("/v1/score", "POST", _PROMPT, prompt=True),
    spec("/v1/rerank", "POST PUT", _PROMPT, prompt=True),
    # tenant data without the engine's cache
    spec("/tokenize", "POST", _TENANT),
    spec("/v1/tokenize", "POST", _TENANT),
    spec("/detokenize", "POST", _TENANT),
    spec("/v1/detokenize", "POST", _TENANT),
    spec("/v1/messages/count_tokens", "POST", _TENANT),
    spec("/parse_function_call", "POST", _TENANT),
    spec("/separate_reasoning", "POST", _TENANT),
    spec("/open_session", "GET POST", _TENANT, why="a session keeps its KV across requests"),
    spec("/close_session", "GET POST", _TENANT),
    # stored responses are looked up by id alone, for every tenant
    spec("/v1/responses/{response_id}", "GET", _REFUSED, why="response store shared by all tenants"),
    spec("/v1/responses/{response_id}/cancel", "POST", _REFUSED, why="response store shared by all tenants"),
    spec("/v1/audio/transcriptions", "POST", _REFUSED, prompt=True, why="multipart body"),
    spec("/v1/realtime", "WEBSOCKET", _REFUSED, prompt=True, why="websocket frames"),
    # operator routes: SGLang's admin-key check decides (hardened by close_privileged_endpoints)
    spec("/get_hicache_l3_cache_layout", "GET", _ADMIN),
    spec("/scale_elastic_ep", "POST", _ADMIN),
    *(
        spec(path, methods, _ADMIN)
        for path, methods in (
            ("/set_internal_state", "POST PUT"),
            ("/flush_cache", "GET POST"),
            ("/add_external_corpus", "POST"),
            ("/remove_external_corpus", "POST"),
            ("/list_external_corpora", "GET"),
            ("/hicache/storage-backend/clear", "POST"),
            ("/hicache/storage-backend", "PUT DELETE GET"),
            ("/start_profile", "GET POST"),
            ("/stop_profile", "GET POST"),
            ("/set_trace_level", "GET POST"),
            ("/freeze_gc", "GET POST"),
            ("/start_expert_distribution_record", "GET POST"),
            ("/stop_expert_distribution_record", "GET POST"),
            ("/dump_expert_distribution_record", "GET POST"),
            ("/update_weights_from_disk", "POST"),
            ("/init_weights_send_group_for_remote_instance", "POST"),
            ("/send_weights_to_remote_instance", "POST"),
            ("/get_remote_instance_transfer_engine_info", "GET"),
            ("/remote_instance_transfer_engine_info", "GET"),
            ("/init_weights_update_group", "POST"),
            ("/destroy_weights_update_group", "POST"),
            ("/update_weights_from_tensor", "POST"),
            ("/begin_weight_update", "POST"),
            ("/end_weight_update", "POST"),
            ("/update_weights_from_distributed", "POST"),
            ("/update_weights_from_ipc", "POST"),
            ("/update_weight_version", "POST"),
            ("/get_weights_by_name", "GET POST"),
            ("/release_memory_occupation", "GET POST"),
            ("/resume_memory_occupation", "GET POST"),
            ("/weights_checker", "GET POST"),
            ("/slow_down", "GET POST"),
            ("/pd_role_switch", "POST"),
            ("/load_lora_adapter", "POST"),
            ("/load_lora_adapter_from_tensors", "POST"),
            ("/unload_lora_adapter", "POST"),
            ("/configure_logging", "GET POST"),
            ("/abort_request", "POST"),
            ("/pause_generation", "POST"),
            ("/continue_generation", "POST"),
        )
    ),
)

ROUTE_TABLE = RouteTable(engine="sglang", version="0.5.23", specs=_ROUTES)
