"""Facts from vLLM: ``collect_facts(argv, environ)`` for ``pccguard check --engine vllm -- <vllm serve args>``.

The mapping reads the *resolved* ``VllmConfig`` (what the engine would run),
falls back to the raw ``EngineArgs`` intent where the checking machine's
platform rejects an option, and reads the deployment's environment variables
for endpoints and debug switches. Every fact gets a provenance: the flag the
user typed, the flag whose default applied, or the environment variable.
Secrets (``--api-key``) are never copied: only the fact that auth is required.

The serving plugin calls ``facts_from_config`` with the live configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from pccguard.adapters.vllm import static_check
from pccguard.adapters.vllm.routes import ROUTE_TABLE, TRUTHY, route_conditions
from pccguard.enforcement.tenancy.routes import route_facts
from pccguard.facts.builder import REDACTED, FactBuilder, qualname, show
from pccguard.facts.model import DeploymentFacts, Provenance

ENGINE = "vllm"

#: Speculative methods whose drafts come from a model or the request's own hidden states: per-request state only.
MODEL_BASED_SPEC = ("draft_model", "eagle", "eagle3", "extract_hidden_states", "dflash", "dspark", "mtp")
#: Speculative methods that draft from the request's own context (n-gram lookup in the prompt).
CONTEXT_SPEC = ("ngram", "ngram_gpu")
#: Connectors that only offload KV to this host's memory or storage (no other instance reads it).
OFFLOAD_CONNECTORS = {
    "OffloadingConnector": "native",
    "SimpleCPUOffloadConnector": "native-simple",
    "LMCacheConnectorV1": "lmcache",
    "LMCacheMPConnector": "lmcache",
    "HF3FSKVConnector": "hf3fs",
    "FlexKVConnectorV1": "flexkv",
}
#: Connectors that move KV between instances (prefill/decode disaggregation, pulls, shared stores).
PULL_CONNECTORS = ("NixlConnector", "NixlPullConnector", "MooncakeConnector", "MoRIIOConnector")
DEV_ENDPOINTS = (
    ("/server_info", "debug"),
    ("/reset_prefix_cache", "admin"),
    ("/reset_mm_cache", "admin"),
    ("/reset_encoder_cache", "admin"),
    ("/collective_rpc", "dev"),
    ("/sleep", "admin"),
    ("/wake_up", "admin"),
    ("/is_sleeping", "admin"),
    ("/release_kv_cache_memory", "admin"),
    ("/update_weights", "weights"),
)
#: Flags whose values are secrets: provenance records that they were given, never what they were.
SECRET_FLAGS = frozenset({"--api-key", "--hf-token", "--ssl-keyfile"})


class _Sources:
    """Where a value comes from: resolved config, raw intent, frontend args, environment."""

    def __init__(
        self,
        *,
        config: Any,
        engine_args: Any | None,
        frontend: Any | None,
        environ: Mapping[str, str],
        explicit: Mapping[str, str],
        options: Mapping[str, str],
        live: bool,
    ) -> None:
        self.config = config
        self.raw = engine_args
        self.frontend = frontend
        self.environ = environ
        self.explicit = explicit
        self.options = options
        self.live = live

    def flag(self, dest: str, value: Any) -> Provenance:
        """Provenance for a value controlled by the option whose argparse dest is ``dest``."""
        name = self.explicit.get(dest) or self.options.get(dest) or "--" + dest.replace("_", "-")
        shown = show(value, secret=name in SECRET_FLAGS)
        if dest in self.explicit:
            return Provenance(kind="flag", name=name, value=shown)
        return Provenance(kind="config" if self.live else "default", name=name, value=shown)

    def env(self, name: str) -> Provenance:
        return Provenance(kind="env", name=name, value=show(self.environ.get(name)))

    def env_true(self, name: str, default: bool = False) -> bool:
        raw = self.environ.get(name)
        return default if raw is None else raw.strip().lower() in TRUTHY

    def front(self, dest: str, default: Any = None) -> Any:
        return default if self.frontend is None else getattr(self.frontend, dest, default)

    def raw_value(self, dest: str, default: Any = None) -> Any:
        return default if self.raw is None else getattr(self.raw, dest, default)


# --------------------------------------------------------------------------- sections


def _memory(b: FactBuilder, s: _Sources) -> None:
    cache = s.config.cache_config
    b.set("optimizations.paging.enabled", True, s.flag("block_size", cache.block_size))
    b.set("optimizations.paging.block_size", cache.block_size, s.flag("block_size", cache.block_size))
    b.set("optimizations.paging.scrub_on_free", False, s.flag("block_size", cache.block_size))
    b.set("optimizations.token_attention.enabled", False, s.flag("block_size", cache.block_size))

    pc = bool(cache.enable_prefix_caching)
    pc_prov = s.flag("enable_prefix_caching", pc)
    b.set("optimizations.prefix_caching.enabled", pc, pc_prov)
    b.set("optimizations.prefix_caching.isolation", "client_salt" if pc else None, pc_prov)
    b.set("optimizations.prefix_caching.ttl_seconds", None, pc_prov)
    b.set("optimizations.prefix_caching.scrub_on_evict", False if pc else None, pc_prov)
    b.set("optimizations.prefix_caching.eviction_policy", "lru" if pc else None, pc_prov)
    b.set("optimizations.prefix_caching.backend", "vllm-apc" if pc else None, pc_prov)
    algo = cache.prefix_caching_hash_algo
    b.set("optimizations.prefix_caching.hash_algorithm", algo, s.flag("prefix_caching_hash_algo", algo))


def _transfer_config(s: _Sources) -> tuple[Any, Any]:
    """The resolved KV transfer config and offload size, or the raw intent when this machine could not resolve it.

    vLLM folds ``--kv-offloading-size`` into a connector at resolution; without
    the connector's package installed here, the same folding is done from the
    raw arguments (``native`` -> OffloadingConnector, ``lmcache`` -> LMCacheMPConnector).
    """
    ktc = s.config.kv_transfer_config
    gib = getattr(s.config.cache_config, "kv_offloading_size", None)
    if ktc is not None or s.raw is None:
        return ktc, gib
    raw = s.raw_value("kv_transfer_config")
    raw_gib = s.raw_value("kv_offloading_size")
    if raw is not None:
        data = (
            raw if isinstance(raw, dict) else {k: getattr(raw, k, None) for k in ("kv_connector", "kv_role")}
        )
        return SimpleNamespace(
            kv_connector=data.get("kv_connector"),
            kv_role=data.get("kv_role"),
            kv_connector_extra_config=dict(data.get("kv_connector_extra_config") or {}),
            kv_connector_module_path=data.get("kv_connector_module_path"),
        ), raw_gib
    if raw_gib:
        backend = s.raw_value("kv_offloading_backend", "native")
        connector = "LMCacheMPConnector" if backend == "lmcache" else "OffloadingConnector"
        extra = {} if backend == "lmcache" else {"cpu_bytes_to_use": int(float(raw_gib) * 2**30)}
        return SimpleNamespace(
            kv_connector=connector,
            kv_role="kv_both",
            kv_connector_extra_config=extra,
            kv_connector_module_path=None,
        ), raw_gib
    return None, None


def _offload_and_transfer(b: FactBuilder, s: _Sources) -> None:
    ktc, offload_gib = _transfer_config(s)
    connector = getattr(ktc, "kv_connector", None) if ktc is not None else None
    if offload_gib:
        prov = s.flag("kv_offloading_size", offload_gib)
    else:
        prov = s.flag("kv_transfer_config", connector)
    backend = OFFLOAD_CONNECTORS.get(connector or "")
    if connector == "MultiConnector" and ktc is not None:
        inner = [c.get("kv_connector") for c in ktc.kv_connector_extra_config.get("connectors", [])]
        backend = next((OFFLOAD_CONNECTORS[c] for c in inner if c in OFFLOAD_CONNECTORS), None)
        connector = ",".join(str(c) for c in inner) or connector
    offloading = backend is not None
    b.set("optimizations.disk_offloading.enabled", offloading, prov)
    if backend is not None:
        size = float(offload_gib) if offload_gib else None
        extra = dict(getattr(ktc, "kv_connector_extra_config", {}) or {})
        if size is None and extra.get("cpu_bytes_to_use"):
            size = float(extra["cpu_bytes_to_use"]) / 2**30
        spec = extra.get("spec_name", "CPUOffloadingSpec")
        tiers: list[str] | None
        if backend.startswith("native"):
            tiers = ["cpu"] if spec in ("CPUOffloadingSpec", "EncryptedCPUOffloadingSpec") else None
        elif backend == "lmcache":
            tiers = None  # LMCache's own config decides: CPU, local disk, remote servers
        else:
            tiers = ["disk"] if backend == "hf3fs" else None
        b.set("optimizations.disk_offloading.backend", backend, prov)
        b.set("optimizations.disk_offloading.tiers", tiers, prov)
        b.set("optimizations.disk_offloading.size_gib", size, prov)
        b.set("optimizations.disk_offloading.encrypted", False, prov)
        b.set("optimizations.disk_offloading.key_scope", None, prov)

    role = getattr(ktc, "kv_role", None) if ktc is not None else None
    tprov = s.flag("kv_transfer_config", {"kv_connector": connector, "kv_role": role} if connector else None)
    transfers = connector is not None and not offloading
    disagg = transfers and role in ("kv_producer", "kv_consumer", "kv_both")
    b.set("optimizations.disaggregated_prefill.enabled", bool(disagg), tprov)
    pulling = transfers and any(name in (connector or "") for name in PULL_CONNECTORS)
    b.set("optimizations.pulling.enabled", bool(pulling) if transfers else False, tprov)
    for key in ("disaggregated_prefill", "pulling"):
        if b.get(f"optimizations.{key}.enabled"):
            b.set(f"optimizations.{key}.backend", connector, tprov)
            b.set(f"optimizations.{key}.role", role, tprov)
            b.set(f"optimizations.{key}.crosses_hosts", None, tprov)
            # vLLM documents KV transfer as unencrypted; a custom connector module is unknown code.
            custom = bool(getattr(ktc, "kv_connector_module_path", None))
            b.set(f"optimizations.{key}.encrypted_transport", None if custom else False, tprov)
    # vLLM has no KV duplication across nodes and no live request migration.
    b.set("optimizations.duplication.enabled", False, s.flag("kv_transfer_config", connector))
    b.set("optimizations.request_migration.enabled", False, s.flag("kv_transfer_config", connector))


def _batching(b: FactBuilder, s: _Sources) -> None:
    sched = s.config.scheduler_config
    pc = bool(s.config.cache_config.enable_prefix_caching)
    b.set("optimizations.continuous_batching.enabled", True, s.flag("max_num_seqs", sched.max_num_seqs))
    chunked = bool(sched.enable_chunked_prefill)
    cprov = s.flag("enable_chunked_prefill", chunked)
    b.set("optimizations.chunked_prefill.enabled", chunked, cprov)
    # Full blocks of each chunk are hashed and cached as soon as they are computed.
    b.set("optimizations.chunked_prefill.chunks_enter_prefix_cache", chunked and pc, cprov)
    b.set(
        "optimizations.chunked_prefill.max_batched_tokens",
        sched.max_num_batched_tokens,
        s.flag("max_num_batched_tokens", sched.max_num_batched_tokens),
    )
    b.set("optimizations.prepack_prefill.enabled", False, cprov)


def _speculative_intent(s: _Sources) -> dict[str, Any] | None:
    resolved = s.config.speculative_config
    if resolved is not None and getattr(resolved, "method", None):
        return {
            "method": resolved.method,
            "suffix_decoding_max_cached_requests": getattr(
                resolved, "suffix_decoding_max_cached_requests", None
            ),
        }
    raw = s.raw_value("speculative_config")
    intent = dict(raw) if isinstance(raw, dict) else {}
    if s.raw_value("spec_method"):
        intent.setdefault("method", s.raw_value("spec_method"))
    if not intent:
        return None
    if not intent.get("method") and intent.get("model"):
        intent["method"] = "draft_model"
    return intent


def _speculation(b: FactBuilder, s: _Sources) -> None:
    dest = "speculative_config" if "spec_method" not in s.explicit else "spec_method"
    intent = _speculative_intent(s)
    prov = s.flag(dest, intent)
    kinds = ("speculation", "context_speculation", "database_speculation")
    for kind in kinds:
        b.set(f"optimizations.{kind}.enabled", False, prov)
    if intent is None:
        return
    method = str(intent.get("method") or "unknown")
    if method == "suffix":
        cached = intent.get("suffix_decoding_max_cached_requests", 10000)
        cross = cached is None or int(cached) > 0
        kind, cross_state, scope = "database_speculation", cross, "global" if cross else "request"
    elif method in CONTEXT_SPEC:
        kind, cross_state, scope = "context_speculation", False, "request"
    elif method in MODEL_BASED_SPEC or method.endswith("_mtp"):
        kind, cross_state, scope = "speculation", False, "request"
    else:  # custom_class or an unknown method: opaque code, may keep anything
        kind, cross_state, scope = "speculation", None, None
        b.set("optimizations.database_speculation.enabled", None, prov)
    b.set(f"optimizations.{kind}.enabled", True, prov)
    b.set(f"optimizations.{kind}.method", method, prov)
    b.set(f"optimizations.{kind}.cross_request_state", cross_state, prov)
    b.set(f"optimizations.{kind}.store_scope", scope, prov)
    if kind == "database_speculation":
        b.set(f"optimizations.{kind}.differential_privacy", False, prov)


def _parallelism(b: FactBuilder, s: _Sources) -> None:
    par = s.config.parallel_config
    nnodes = int(getattr(par, "nnodes", 1) or 1)
    multi_host = nnodes > 1 or (getattr(par, "distributed_executor_backend", None) == "ray" and None)
    items = (
        ("tensor_parallelism", "tensor_parallel_size", par.tensor_parallel_size),
        ("pipeline_parallelism", "pipeline_parallel_size", par.pipeline_parallel_size),
        (
            "sequence_parallelism",
            "decode_context_parallel_size",
            max(
                int(getattr(par, "decode_context_parallel_size", 1) or 1),
                int(getattr(par, "prefill_context_parallel_size", 1) or 1),
            ),
        ),
    )
    for key, dest, size in items:
        prov = s.flag(dest, size)
        on = int(size) > 1
        b.set(f"optimizations.{key}.enabled", on, prov)
        b.set(f"optimizations.{key}.size", int(size), prov)
        if on:
            crosses = True if nnodes > 1 else (None if multi_host is None else False)
            b.set(f"optimizations.{key}.crosses_hosts", crosses, s.flag("nnodes", nnodes))
            # NCCL/Gloo traffic between hosts is not encrypted by vLLM.
            b.set(f"optimizations.{key}.encrypted_interconnect", False if crosses else None, prov)


def _scheduling(b: FactBuilder, s: _Sources) -> None:
    sched = s.config.scheduler_config
    policy = sched.policy
    prov = s.flag("scheduling_policy", policy)
    prio = policy == "priority"
    b.set("optimizations.priority_scheduling.enabled", prio, prov)
    # The request body's ``priority`` field decides the order: the client chooses it.
    b.set("optimizations.priority_scheduling.priority_source", "client" if prio else None, prov)
    b.set("optimizations.request_level_prediction.enabled", False, prov)
    b.set("optimizations.instance_flip.enabled", False, prov)
    b.set("optimizations.cache_aware_scheduling.enabled", False, prov)
    par = s.config.parallel_config
    external_lb = bool(getattr(par, "data_parallel_external_lb", False)) or bool(
        getattr(par, "data_parallel_hybrid_lb", False)
    )
    lprov = s.flag("data_parallel_external_lb", external_lb)
    b.set("optimizations.machine_level_scheduler.enabled", external_lb, lprov)
    if external_lb:
        b.set("optimizations.machine_level_scheduler.inside_trust_boundary", None, lprov)
    custom = sched.scheduler_cls
    if custom and not _is_pccguard(custom):
        # A custom scheduler class is code pccguard cannot see: its ordering is unknown.
        cprov = s.flag("scheduler_cls", qualname(custom))
        b.set("optimizations.request_level_prediction.enabled", None, cprov)
        b.set("optimizations.cache_aware_scheduling.enabled", None, cprov)


def _is_pccguard(obj: Any) -> bool:
    return qualname(obj).startswith("pccguard.")


def _profiling(b: FactBuilder, s: _Sources) -> None:
    prof = getattr(s.config, "profiler_config", None)
    kind = getattr(prof, "profiler", None) if prof is not None else None
    prov = s.flag("profiler_config", kind)
    b.set("optimizations.global_profiling.enabled", kind is not None, prov)
    if kind is not None:
        b.set("optimizations.global_profiling.captures_content", None, prov)
    b.set("observability.profiler.enabled", kind is not None, prov)
    b.set("optimizations.closed_source.enabled", False, Provenance(kind="default", name="vllm"))


def _logging(b: FactBuilder, s: _Sources) -> None:
    req_log = bool(s.raw_value("enable_log_requests", s.front("enable_log_requests", False)))
    prov = s.flag("enable_log_requests", req_log)
    level = str(s.environ.get("VLLM_LOGGING_LEVEL", "INFO")).upper()
    b.set("observability.request_logging.enabled", req_log, prov)
    if req_log:
        # Parameters at INFO; prompts and token ids at DEBUG.
        content = "prompts" if level == "DEBUG" else "metadata"
        b.set(
            "observability.request_logging.content",
            content,
            s.env("VLLM_LOGGING_LEVEL") if level == "DEBUG" else prov,
        )
        b.set("observability.request_logging.allowlisted", False, prov)
    if s.frontend is not None:
        out_log = bool(s.front("enable_log_outputs", False))
        oprov = s.flag("enable_log_outputs", out_log)
        b.set("observability.output_logging.enabled", out_log, oprov)
        if out_log:
            b.set("observability.output_logging.content", "outputs", oprov)
            b.set("observability.output_logging.allowlisted", False, oprov)
    if s.env_true("VLLM_DEBUG_LOG_API_SERVER_RESPONSE"):
        eprov = s.env("VLLM_DEBUG_LOG_API_SERVER_RESPONSE")
        b.set("observability.output_logging.enabled", True, eprov)
        b.set("observability.output_logging.content", "outputs", eprov)
        b.set("observability.output_logging.allowlisted", False, eprov)


def _events_and_telemetry(b: FactBuilder, s: _Sources) -> None:
    kv = s.config.kv_events_config
    on = bool(kv is not None and kv.enable_kv_cache_events)
    prov = s.flag("kv_events_config", {"enable_kv_cache_events": on} if kv is not None else None)
    b.set("observability.kv_events.enabled", on, prov)
    if on:
        # BlockStored carries the block's token ids and the request's raw cache salt.
        b.set("observability.kv_events.includes_token_ids", True, prov)
        b.set("observability.kv_events.includes_salt", True, prov)
        b.set("observability.kv_events.endpoint", kv.endpoint if kv.publisher != "null" else None, prov)

    if s.frontend is not None:
        details = bool(s.front("enable_prompt_tokens_details", False))
        b.set(
            "observability.cached_token_reporting.enabled",
            details,
            s.flag("enable_prompt_tokens_details", details),
        )
    obs = s.config.observability_config
    mprov = s.flag("disable_log_stats", getattr(s.raw, "disable_log_stats", None))
    serving = s.frontend is not None
    # The API server always serves /metrics (prefix-cache hit counters included); --api-key guards /v1 only.
    # An engine embedded without the API server (``LLM``) exports nothing.
    b.set("observability.metrics.enabled", serving, mprov)
    if serving:
        b.set(
            "observability.metrics.cache_hit_metrics",
            bool(s.config.cache_config.enable_prefix_caching),
            mprov,
        )
        b.set("observability.metrics.authenticated", False, mprov)

    endpoint = getattr(obs, "otlp_traces_endpoint", None)
    tprov = s.flag("otlp_traces_endpoint", endpoint)
    b.set("observability.tracing.enabled", endpoint is not None, tprov)
    if endpoint is not None:
        b.set("observability.tracing.endpoint", endpoint, tprov)
        # Spans carry ids, sampling parameters, token counts and latencies, not text.
        b.set("observability.tracing.captures_content", False, tprov)

    dump_env = s.environ.get("VLLM_DEBUG_DUMP_PATH")
    compile_dump = getattr(getattr(s.config, "compilation_config", None), "debug_dump_path", None)
    trace_fn = s.env_true("VLLM_TRACE_FUNCTION")
    if dump_env:
        b.set("observability.dumps.enabled", True, s.env("VLLM_DEBUG_DUMP_PATH"))
        b.set("observability.dumps.path", dump_env, s.env("VLLM_DEBUG_DUMP_PATH"))
    elif compile_dump:
        b.set("observability.dumps.enabled", True, s.flag("compilation_config", str(compile_dump)))
        b.set("observability.dumps.path", str(compile_dump), s.flag("compilation_config", str(compile_dump)))
    elif trace_fn:
        b.set("observability.dumps.enabled", True, s.env("VLLM_TRACE_FUNCTION"))
    else:
        b.set("observability.dumps.enabled", False, s.env("VLLM_DEBUG_DUMP_PATH"))

    no_stats = (
        s.env_true("VLLM_NO_USAGE_STATS") or s.env_true("VLLM_DO_NOT_TRACK") or s.env_true("DO_NOT_TRACK")
    )
    b.set("observability.usage_stats.enabled", not no_stats, s.env("VLLM_NO_USAGE_STATS"))
    store = s.env_true("VLLM_ENABLE_RESPONSES_API_STORE")
    b.set("observability.response_store.enabled", store, s.env("VLLM_ENABLE_RESPONSES_API_STORE"))


def _api_and_endpoints(b: FactBuilder, s: _Sources) -> list[dict[str, Any]]:
    keys = s.front("api_key") or []
    keys = [keys] if isinstance(keys, str) else list(keys)
    env_key = bool(s.environ.get("VLLM_API_KEY"))
    auth = bool(keys) or env_key
    aprov = (
        s.flag("api_key", bool(keys)) if keys or not env_key else Provenance(kind="env", name="VLLM_API_KEY")
    )
    if env_key and not keys:
        aprov = Provenance(kind="env", name="VLLM_API_KEY", value=REDACTED)
    serving = s.frontend is not None
    b.set("api.auth_required", auth if serving else None, aprov)
    dev = s.env_true("VLLM_SERVER_DEV_MODE")
    dprov = s.env("VLLM_SERVER_DEV_MODE")
    b.set("api.admin_auth_required", False if serving else None, dprov)
    if s.front("ssl_certfile"):
        b.set("api.tls_terminated_by", "engine", s.flag("ssl_certfile", True))
    lora_rt = s.env_true("VLLM_ALLOW_RUNTIME_LORA_UPDATING")
    b.set("api.runtime_lora_updates", lora_rt, s.env("VLLM_ALLOW_RUNTIME_LORA_UPDATING"))
    weights_cfg = getattr(s.config, "weight_transfer_config", None)
    b.set(
        "api.runtime_weight_updates",
        dev or weights_cfg is not None,
        dprov if dev or weights_cfg is None else s.flag("weight_transfer_config", True),
    )
    procs = s.raw_value("logits_processors")
    b.set("api.custom_logit_processors", bool(procs), s.flag("logits_processors", procs))

    endpoints: list[dict[str, Any]] = []
    if not serving:
        # An engine embedded without vLLM's API server (``LLM``, ``AsyncLLM``) serves no routes:
        # nothing reaches it, admin or otherwise, except through the embedding process itself.
        none = Provenance(kind="runtime", name="no API server in this process")
        b.set("api.admin_auth_required", True, none)
        b.set("observability.output_logging.enabled", False, none)
        b.set("observability.cached_token_reporting.enabled", False, none)
        b.set("api.routes", [], none)
        return endpoints
    served = ROUTE_TABLE.served(route_conditions(s.config, s.frontend, s.environ))
    b.set(
        "api.routes",
        route_facts(served),
        Provenance(kind="default", name="vllm serve", value=f"routes of vLLM {ROUTE_TABLE.version}"),
    )
    endpoints.append({"path": "/v1", "purpose": "inference", "enabled": True, "authenticated": auth})
    endpoints.append({"path": "/health", "purpose": "health", "enabled": True, "authenticated": False})
    endpoints.append({"path": "/metrics", "purpose": "metrics", "enabled": True, "authenticated": False})
    if dev:
        # vLLM's dev routes sit outside /v1, so --api-key does not guard them.
        endpoints += [
            {"path": p, "purpose": k, "enabled": True, "authenticated": False} for p, k in DEV_ENDPOINTS
        ]
    if b.get("observability.profiler.enabled"):
        for path in ("/start_profile", "/stop_profile"):
            endpoints.append({"path": path, "purpose": "profiler", "enabled": True, "authenticated": False})
    if lora_rt:
        for path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
            endpoints.append({"path": path, "purpose": "weights", "enabled": True, "authenticated": auth})
    if s.front("enable_tokenizer_info_endpoint", False):
        endpoints.append(
            {"path": "/tokenizer_info", "purpose": "debug", "enabled": True, "authenticated": auth}
        )
    return endpoints


def _endpoint_provenance(s: _Sources, path: str) -> Provenance:
    if path in {p for p, _ in DEV_ENDPOINTS}:
        return s.env("VLLM_SERVER_DEV_MODE")
    if path.endswith("lora_adapter"):
        return s.env("VLLM_ALLOW_RUNTIME_LORA_UPDATING")
    if path.endswith("_profile"):
        return s.flag("profiler_config", True)
    if path == "/tokenizer_info":
        return s.flag("enable_tokenizer_info_endpoint", True)
    return s.flag("port", s.front("port"))


def _tenancy(b: FactBuilder, s: _Sources) -> None:
    keys = s.front("api_key") or s.environ.get("VLLM_API_KEY")
    if keys:
        prov = s.flag("api_key", True)
        b.set("tenancy.identified_by", "api_key", prov)
        b.set("tenancy.authenticated_at", "engine", prov)


# --------------------------------------------------------------------------- entry points


def facts_from_config(
    config: Any,
    *,
    environ: Mapping[str, str],
    engine_args: Any | None = None,
    frontend: Any | None = None,
    explicit: Mapping[str, str] | None = None,
    options: Mapping[str, str] | None = None,
    live: bool = False,
    name: str | None = None,
) -> DeploymentFacts:
    """Map a resolved ``VllmConfig`` (plus raw intent and frontend args, when known) to facts."""
    import vllm

    s = _Sources(
        config=config,
        engine_args=engine_args,
        frontend=frontend,
        environ=environ,
        explicit=explicit or {},
        options=options or {},
        live=live,
    )
    b = FactBuilder()
    model = config.model_config
    served = getattr(model, "served_model_name", None)
    deployment_name = name or (served[0] if isinstance(served, list) and served else served) or "vllm"
    b.set("deployment.name", str(deployment_name), s.flag("served_model_name", deployment_name))
    b.set("deployment.engine", ENGINE, Provenance(kind="default", name="--engine", value=ENGINE))
    b.set("deployment.engine_version", vllm.__version__, Provenance(kind="probe", name="vllm.__version__"))
    _memory(b, s)
    _offload_and_transfer(b, s)
    _batching(b, s)
    _speculation(b, s)
    _parallelism(b, s)
    _scheduling(b, s)
    _profiling(b, s)
    _logging(b, s)
    _events_and_telemetry(b, s)
    endpoints = _api_and_endpoints(b, s)
    _tenancy(b, s)
    b.set("model.name", str(model.model), s.flag("model", model.model))
    _apply_raw_intent(b, s)
    b.set_list("endpoints", endpoints, [_endpoint_provenance(s, e["path"]) for e in endpoints])
    return b.build()


def _apply_raw_intent(b: FactBuilder, s: _Sources) -> None:
    """Intent the checking platform could not resolve (CUDA-only options) is still a fact."""
    sleep = bool(s.raw_value("enable_sleep_mode", False)) or bool(
        getattr(s.config.model_config, "enable_sleep_mode", False)
    )
    if sleep:
        # Sleep mode hands the KV cache memory back to the allocator without clearing it.
        b.set("optimizations.paging.scrub_on_free", False, s.flag("enable_sleep_mode", True))


def sleep_mode_requested(config: Any, engine_args: Any | None = None) -> bool:
    """Whether sleep mode is on (it releases KV memory without scrubbing, so no scrub guarantee holds)."""
    raw = bool(getattr(engine_args, "enable_sleep_mode", False)) if engine_args is not None else False
    return raw or bool(getattr(config.model_config, "enable_sleep_mode", False))


def collect_facts(argv: list[str], environ: Mapping[str, str]) -> DeploymentFacts:
    """Facts for ``vllm serve <argv>`` run with environment ``environ`` (no secrets copied)."""
    from pccguard.adapters.vllm.parse import parse_serve_args, stdout_to_stderr

    with static_check():
        parsed = parse_serve_args(list(argv), environ)
        with stdout_to_stderr():
            return facts_from_config(
                parsed.config,
                environ=environ,
                engine_args=parsed.engine_args,
                frontend=parsed.args,
                explicit=parsed.explicit,
                options=parsed.options,
            )
