"""Facts from SGLang's own ``ServerArgs``.

``pccguard check --engine sglang -- <launch_server arguments>`` parses the
arguments with SGLang's parser (``ServerArgs.add_cli_args`` +
``ServerArgs.from_cli_args``, ``--config`` files included) and, when it can be
done locally, runs SGLang's own resolution (``resolve_once``) so that derived
values (page size, chunk size, attention backend) are the ones the engine would
use. Resolution needs the model's ``config.json`` on disk and an accelerator (or
``--device cpu``); when it cannot run, the raw values are used and values that
only resolution decides stay unknown (``None``).

The serving plugin calls :func:`facts_from_server_args` on the live, resolved
record. Secrets (API keys) never enter facts: only whether they are set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# torch must be loaded before regopy (the embedded policy engine): regopy 1.5.2's
# bundled OpenSSL makes a later ``import torch`` abort the process.
import torch  # noqa: F401  (import order, see above)

from pccguard.enforcement.tenancy.routes import route_facts
from pccguard.errors import InputError
from pccguard.facts.arguments import engine_error, one_line_errors, parse_engine_args
from pccguard.facts.builder import FactBuilder, declare_mitigations, default, show
from pccguard.facts.model import DeploymentFacts, Provenance

from .routes import DUMPER_PREFIX, PRIVILEGED_ROUTES, ROUTE_TABLE

ENGINE = "sglang"

#: Speculative algorithms whose drafts come from a store fed by other requests.
DATABASE_SPECULATION = frozenset({"NGRAM"})
#: Schedule policies whose order depends on what the prefix cache holds.
CACHE_AWARE_POLICIES = frozenset({"lpm", "dfs-weight", "hrrn", "shortest-prefill-first"})
#: HiCache L3 backends that write KV outside the process; all store plaintext in 0.5.23.
DISK_BACKENDS = frozenset({"file", "hf3fs", "seaweedfs", "simm"})
#: The encrypting backend pccguard ships for ``--hicache-storage-backend dynamic``.
PCCGUARD_STORAGE_CLASS = "pccguard.adapters.sglang.runtime.hicache"
CONFIG_MARK = "config:"
SECRET_FIELDS = frozenset({"api_key", "admin_api_key", "ssl_keyfile_password", "watermark_key"})
#: How errors name the arguments they are about.
WHAT = "sglang launch_server arguments"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _given_flags(argv: list[str]) -> set[str]:
    flags = set()
    for token in argv:
        if token.startswith("--"):
            flags.add(token.split("=", 1)[0])
    return flags


def parse_server_args(argv: list[str]) -> tuple[Any, set[str], str | None]:
    """``(ServerArgs, flags given explicitly, --config file)`` or a one-line ``InputError``.

    Flags that came from the ``--config`` file are reported with the file as provenance.
    """
    from sglang.srt.server_args import ServerArgs

    parser = one_line_errors(argparse.ArgumentParser(prog="sglang serve", add_help=False), WHAT)
    ServerArgs.add_cli_args(parser)
    config_file: str | None = None
    argv = list(argv)
    on_command_line = _given_flags(argv)
    if "--config" in argv:
        from sglang.srt.utils.server_args_config_parser import ConfigArgumentMerger

        index = argv.index("--config")
        config_file = argv[index + 1] if index + 1 < len(argv) else None
        try:
            argv = ConfigArgumentMerger(parser).merge_config_with_args(argv)
        except (OSError, ValueError) as exc:
            raise InputError(f"sglang --config: {exc}") from None
    raw = parse_engine_args(parser, argv, WHAT)
    raw._radix_eviction_policy_explicitly_set = any(
        a == "--radix-eviction-policy" or a.startswith("--radix-eviction-policy=") for a in argv
    )
    try:
        server_args = ServerArgs.from_cli_args(raw)
    except Exception as exc:
        raise engine_error(WHAT, exc) from None
    from_file = _given_flags(argv) - on_command_line
    given = on_command_line | {f"{CONFIG_MARK}{flag}" for flag in from_file}
    return server_args, given, config_file


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Resolution may ask the Hub for a model config: never let a check touch the network."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def try_resolve(server_args: Any) -> bool:
    """Run SGLang's resolution when it can run here; ``False`` leaves raw values."""
    model = Path(str(server_args.model_path or ""))
    if not (model / "config.json").is_file():
        return False
    with _offline():
        try:
            server_args.resolve_once()
        except Exception:
            return False
    return True


def collect_facts(argv: list[str], environ: Mapping[str, str]) -> DeploymentFacts:
    """Facts for ``pccguard check|facts --engine sglang -- <launch_server arguments>``."""
    with contextlib.redirect_stdout(sys.stderr):
        server_args, given, config_file = parse_server_args(argv)
    resolved = try_resolve(server_args)
    if not resolved:
        # A failed resolution leaves partial writes on the record; read a fresh one.
        with contextlib.redirect_stdout(sys.stderr):
            server_args, given, config_file = parse_server_args(argv)
    facts = facts_from_server_args(
        server_args, environ, resolved=resolved, given=given, config_file=config_file
    )
    named = named_mitigations(server_args)
    if not named:
        return facts
    why = Provenance(kind="flag", name="--hicache-storage-backend-extra-config", value=PCCGUARD_STORAGE_CLASS)
    return declare_mitigations(facts, named, why)


def named_mitigations(server_args: Any) -> list[str]:
    """pccguard mitigations that the arguments themselves name: pccguard's encrypting HiCache backend."""
    if not getattr(server_args, "enable_hierarchical_cache", False):
        return []
    storage = getattr(server_args, "hicache_storage_backend", None)
    _, ours = _storage_tier(storage, getattr(server_args, "hicache_storage_backend_extra_config", None))
    return ["encrypt_offload"] if ours else []


# --------------------------------------------------------------------------- mapping


class _Facts:
    """SGLang's values, and where each came from, written through the shared ``FactBuilder``.

    ``given`` holds the flags typed on the command line (``config:--flag`` for
    those from the ``--config`` file); ``None`` means the values are the live
    record of a running server, whose provenance is ``runtime``.
    """

    def __init__(self, values: Any, given: set[str] | None, config_file: str | None, resolved: bool) -> None:
        self.values = values
        self.given = given
        self.config_file = config_file
        self.resolved = resolved
        self.builder = FactBuilder()

    def get(self, name: str) -> Any:
        """The engine's value of the ``ServerArgs`` field ``name``."""
        return self.values(name)

    def source(self, name: str, shown: Any) -> Provenance:
        """Provenance of a value controlled by the ``ServerArgs`` field ``name``."""
        flag = _flag(name)
        text = show(shown, secret=name in SECRET_FIELDS)
        if self.given is None:
            return Provenance(kind="runtime", name=flag, value=text)
        if flag in self.given:
            return Provenance(kind="flag", name=flag, value=text)
        if f"{CONFIG_MARK}{flag}" in self.given:
            return Provenance(kind="file", name=flag, value=text, uri=self.config_file)
        return Provenance(kind="default", name=flag, value=text)

    def put(
        self, path: str, value: Any, *, from_field: str | None = None, why: Provenance | None = None
    ) -> None:
        """Set a fact; its provenance is ``why``, else the field ``from_field`` it was read from."""
        if why is None:
            if from_field is None:
                raise TypeError(f"fact {path!r} set without a provenance")
            why = self.source(from_field, self.get(from_field))
        self.builder.set(path, value, why)


_default = default


def facts_from_server_args(
    server_args: Any,
    environ: Mapping[str, str],
    *,
    resolved: bool,
    given: set[str] | None = None,
    config_file: str | None = None,
) -> DeploymentFacts:
    """Map every privacy-relevant ``ServerArgs`` field (see docs/sglang.md) to facts."""
    if resolved:
        from sglang.srt.arg_groups.overrides import resolution_result

        def values(name: str) -> Any:
            return resolution_result(server_args, name)
    else:

        def values(name: str) -> Any:
            return getattr(server_args, name, None)

    f = _Facts(values=values, given=given, config_file=config_file, resolved=resolved)
    _deployment(f)
    _memory(f, environ)
    _offload(f)
    _transfer(f)
    _batching(f)
    _speculation(f)
    _parallelism(f)
    _scheduling(f, environ)
    _observability(f, environ)
    _api(f, environ)
    return f.builder.build()


def _deployment(f: _Facts) -> None:
    import sglang

    name = f.get("served_model_name") or Path(str(f.get("model_path") or "sglang")).name or "sglang"
    field = "served_model_name" if f.get("served_model_name") else "model_path"
    f.put("deployment.name", str(name)[:100], from_field=field)
    f.put("deployment.engine", ENGINE, why=Provenance(kind="default", name="--engine", value=ENGINE))
    f.put(
        "deployment.engine_version",
        str(sglang.__version__),
        why=Provenance(kind="probe", name="sglang.__version__"),
    )


def _memory(f: _Facts, environ: Mapping[str, str]) -> None:
    page_size = f.get("page_size")
    never = "sglang 0.5.23 never clears freed KV slots or pages"
    f.put("optimizations.paging.enabled", True, why=_default("the KV pool is always paged", "--page-size"))
    f.put("optimizations.paging.block_size", page_size, from_field="page_size")
    f.put("optimizations.paging.scrub_on_free", False, why=_default(never))
    token_granular = None if page_size is None else page_size == 1
    f.put("optimizations.token_attention.enabled", token_granular, from_field="page_size")
    f.put("optimizations.token_attention.scrub_on_free", False, why=_default(never))

    radix_off = bool(f.get("disable_radix_cache"))
    forced_miss = environ.get("SGLANG_RADIX_FORCE_MISS", "").lower() in ("1", "true")
    f.put("optimizations.prefix_caching.enabled", not radix_off, from_field="disable_radix_cache")
    if forced_miss and not radix_off:
        f.put(
            "optimizations.prefix_caching.enabled",
            False,
            why=Provenance(kind="env", name="SGLANG_RADIX_FORCE_MISS", value="1"),
        )
    f.put(
        "optimizations.prefix_caching.isolation",
        "client_salt",
        why=_default("only a client-supplied, optional cache_salt separates tenants"),
    )
    f.put("optimizations.prefix_caching.ttl_seconds", None, why=_default("no expiry in sglang 0.5.23"))
    f.put(
        "optimizations.prefix_caching.hash_algorithm",
        "sha256",
        why=_default("radix keys compare token ids exactly; HiCache L3 keys are SHA-256 chains"),
    )
    f.put(
        "optimizations.prefix_caching.eviction_policy",
        f.get("radix_eviction_policy"),
        from_field="radix_eviction_policy",
    )
    f.put("optimizations.prefix_caching.scrub_on_evict", False, why=_default(never))
    f.put(
        "optimizations.prefix_caching.backend",
        f.get("radix_cache_backend") or "unified",
        from_field="radix_cache_backend",
    )


def _storage_tier(backend: str | None, extra: Any) -> tuple[str | None, bool]:
    """(tier, whether it is pccguard's encrypting backend) of a HiCache L3 backend name."""
    if backend is None:
        return None, False
    if backend == "dynamic":
        config = extra
        if isinstance(extra, str):
            try:
                config = json.loads(extra)
            except ValueError:  # SGLang refuses it at start; a check must not guess what it meant
                raise InputError("--hicache-storage-backend-extra-config is not valid JSON") from None
        module = config.get("module_path") if isinstance(config, dict) else None
        return "disk", module == PCCGUARD_STORAGE_CLASS
    return ("disk" if backend in DISK_BACKENDS else "remote"), False


def _offload(f: _Facts) -> None:
    hicache = bool(f.get("enable_hierarchical_cache"))
    lmcache = bool(f.get("enable_lmcache"))
    flexkv = bool(f.get("enable_flexkv"))
    linker = bool(f.get("enable_unified_cache_external_linker"))
    storage = f.get("hicache_storage_backend") if hicache else None
    tier, ours = _storage_tier(storage, f.get("hicache_storage_backend_extra_config"))
    enabled = hicache or lmcache or flexkv or linker
    source = next(
        (
            n
            for n, on in (
                ("enable_hierarchical_cache", hicache),
                ("enable_lmcache", lmcache),
                ("enable_flexkv", flexkv),
                ("enable_unified_cache_external_linker", linker),
            )
            if on
        ),
        "enable_hierarchical_cache",
    )
    f.put("optimizations.disk_offloading.enabled", enabled, from_field=source)
    if not enabled:
        return
    tiers = ["cpu"] if hicache or flexkv else []
    if tier:
        tiers.append(tier)
    if lmcache or linker:
        tiers.append("remote")
    f.put("optimizations.disk_offloading.tiers", sorted(set(tiers)), from_field=source)
    backend = storage or (
        "lmcache" if lmcache else "flexkv" if flexkv else "external_linker" if linker else "host_memory"
    )
    f.put(
        "optimizations.disk_offloading.backend",
        backend,
        from_field="hicache_storage_backend" if storage else source,
    )
    # SGLang's own backends store plaintext. pccguard's AES-GCM backend, when named here, is the
    # encrypt_offload mitigation: like every mitigation it counts through runtime.mitigations_active
    # (enforced when the plugin installs it, declared in a check), never as an engine fact.
    note = "sglang 0.5.23 offloads KV in plaintext"
    if ours:
        note += "; the pccguard backend named here is the encrypt_offload mitigation"
    why = _default(note, "--hicache-storage-backend")
    f.put("optimizations.disk_offloading.encrypted", False, why=why)
    f.put("optimizations.disk_offloading.cipher", "none", why=why)


def _transfer(f: _Facts) -> None:
    mode = f.get("disaggregation_mode") or "null"
    on = mode in ("prefill", "decode")
    f.put("optimizations.disaggregated_prefill.enabled", on, from_field="disaggregation_mode")
    if on:
        backend = f.get("disaggregation_transfer_backend")
        f.put(
            "optimizations.disaggregated_prefill.backend",
            backend,
            from_field="disaggregation_transfer_backend",
        )
        f.put("optimizations.disaggregated_prefill.role", mode, from_field="disaggregation_mode")
        plain = _default("sglang 0.5.23 transfers KV without encryption or authentication")
        f.put("optimizations.disaggregated_prefill.encrypted_transport", False, why=plain)
        crosses = None if backend != "fake" else False
        f.put(
            "optimizations.disaggregated_prefill.crosses_hosts",
            crosses,
            from_field="disaggregation_transfer_backend",
        )
        f.put("optimizations.disaggregated_prefill.synchronized_expiry", False, why=_default("no KV expiry"))
        # The decode side pulls KV from the prefill side over the same channel.
        f.put("optimizations.pulling.enabled", True, from_field="disaggregation_mode")
        f.put("optimizations.pulling.backend", backend, from_field="disaggregation_transfer_backend")
        f.put("optimizations.pulling.encrypted_transport", False, why=plain)
        f.put("optimizations.pulling.crosses_hosts", crosses, from_field="disaggregation_transfer_backend")
        f.put("optimizations.pulling.synchronized_expiry", False, why=_default("no KV expiry"))
    else:
        f.put("optimizations.pulling.enabled", False, from_field="disaggregation_mode")
    none = _default("sglang 0.5.23 has no such feature")
    f.put("optimizations.duplication.enabled", False, why=none)
    f.put("optimizations.request_migration.enabled", False, why=none)


def _batching(f: _Facts) -> None:
    f.put("optimizations.continuous_batching.enabled", True, why=_default("always on"))
    size = f.get("chunked_prefill_size")
    if size is None:
        enabled: bool | None = None if not f.resolved else True
    else:
        enabled = int(size) > 0
    f.put("optimizations.chunked_prefill.enabled", enabled, from_field="chunked_prefill_size")
    f.put(
        "optimizations.chunked_prefill.max_batched_tokens",
        size if size and size > 0 else None,
        from_field="chunked_prefill_size",
    )
    radix = not bool(f.get("disable_radix_cache"))
    enters = None if enabled is None else (enabled and radix)
    f.put(
        "optimizations.chunked_prefill.chunks_enter_prefix_cache", enters, from_field="chunked_prefill_size"
    )
    f.put("optimizations.prepack_prefill.enabled", False, why=_default("sglang 0.5.23 has no such feature"))


def _speculation(f: _Facts) -> None:
    algo = (f.get("speculative_algorithm") or "").upper() or None
    database = algo in DATABASE_SPECULATION
    draft = algo is not None and not database
    f.put("optimizations.speculation.enabled", draft, from_field="speculative_algorithm")
    if algo is not None and draft:
        f.put("optimizations.speculation.method", algo.lower(), from_field="speculative_algorithm")
        f.put(
            "optimizations.speculation.cross_request_state",
            False,
            why=_default("draft-model state is per request"),
        )
        f.put("optimizations.speculation.store_scope", "request", from_field="speculative_algorithm")
    f.put("optimizations.database_speculation.enabled", database, from_field="speculative_algorithm")
    if database:
        why = _default(
            "one NgramCorpus fed by every request, reset only by flush_cache", "--speculative-algorithm"
        )
        f.put("optimizations.database_speculation.method", "ngram", from_field="speculative_algorithm")
        f.put("optimizations.database_speculation.cross_request_state", True, why=why)
        f.put("optimizations.database_speculation.store_scope", "global", why=why)
        f.put("optimizations.database_speculation.differential_privacy", False, why=why)
    f.put(
        "optimizations.context_speculation.enabled",
        False,
        why=_default("no prompt-lookup drafting in sglang"),
    )


def _parallelism(f: _Facts) -> None:
    nnodes = int(f.get("nnodes") or 1)
    for opt, name in (
        ("tensor_parallelism", "tp_size"),
        ("pipeline_parallelism", "pp_size"),
        ("sequence_parallelism", "attn_cp_size"),
    ):
        size = int(f.get(name) or 1)
        f.put(f"optimizations.{opt}.enabled", size > 1, from_field=name)
        f.put(f"optimizations.{opt}.size", size, from_field=name)
        if size > 1:
            f.put(f"optimizations.{opt}.crosses_hosts", nnodes > 1, from_field="nnodes")
            f.put(
                f"optimizations.{opt}.encrypted_interconnect",
                False,
                why=_default("NCCL/Gloo traffic is not encrypted"),
            )


def _scheduling(f: _Facts, environ: Mapping[str, str]) -> None:
    policy = f.get("schedule_policy") or "fcfs"
    priority = bool(f.get("enable_priority_scheduling")) or policy == "priority"
    f.put("optimizations.priority_scheduling.enabled", priority, from_field="enable_priority_scheduling")
    if priority:
        f.put(
            "optimizations.priority_scheduling.priority_source",
            "client",
            why=_default("the request's priority field", "--enable-priority-scheduling"),
        )
    # With the tree disabled SchedulePolicy falls back to FCFS for every cache-aware policy.
    aware = policy in CACHE_AWARE_POLICIES and not f.get("disable_radix_cache")
    f.put("optimizations.cache_aware_scheduling.enabled", aware, from_field="schedule_policy")
    f.put("optimizations.cache_aware_scheduling.policy", policy, from_field="schedule_policy")
    if aware:
        f.put(
            "optimizations.cache_aware_scheduling.scope",
            "global",
            why=_default("one tree for all tenants unless clients salt", "--schedule-policy"),
        )
    f.put(
        "optimizations.request_level_prediction.enabled",
        False,
        why=_default("no output-length prediction in sglang 0.5.23"),
    )
    dp = int(f.get("dp_size") or 1)
    f.put("optimizations.machine_level_scheduler.enabled", True if dp > 1 else None, from_field="dp_size")
    if dp > 1:
        f.put(
            "optimizations.machine_level_scheduler.inside_trust_boundary",
            True,
            why=_default("the data-parallel controller runs inside the engine", "--dp-size"),
        )
        f.put(
            "optimizations.machine_level_scheduler.uses_prompt_content",
            False,
            from_field="load_balance_method",
        )
    # Roles (and /pd_role_switch flips between them) exist only with PD disaggregation.
    f.put(
        "optimizations.instance_flip.enabled",
        f.get("disaggregation_mode") in ("prefill", "decode"),
        from_field="disaggregation_mode",
    )
    profiler_dir = environ.get("SGLANG_TORCH_PROFILER_DIR")
    f.put(
        "optimizations.global_profiling.enabled",
        bool(profiler_dir),
        why=Provenance(kind="env", name="SGLANG_TORCH_PROFILER_DIR", value=show(profiler_dir)),
    )
    f.put(
        "optimizations.closed_source.enabled",
        None,
        why=_default("sglang is open source; the rest of the stack is not visible from its arguments"),
    )


def _observability(f: _Facts, environ: Mapping[str, str]) -> None:
    log = bool(f.get("log_requests"))
    level = int(f.get("log_requests_level") or 0)
    # 0-1: metadata; 2: partial input/output; 3: every input/output.
    content = "none" if not log else ("metadata" if level <= 1 else "full")
    for facet in ("request_logging", "output_logging"):
        f.put(f"observability.{facet}.enabled", log, from_field="log_requests")
        f.put(f"observability.{facet}.content", content, from_field="log_requests_level")
        f.put(
            f"observability.{facet}.allowlisted", False, why=_default("free-form log lines", "--log-requests")
        )
    events = f.get("kv_events_config")
    f.put("observability.kv_events.enabled", bool(events), from_field="kv_events_config")
    if events:
        endpoint = _events_endpoint(events)
        f.put(
            "observability.kv_events.includes_token_ids",
            True,
            why=_default("BlockStored events carry token ids", "--kv-events-config"),
        )
        f.put(
            "observability.kv_events.includes_salt",
            False,
            why=_default("events carry salt-namespaced hashes, not salts", "--kv-events-config"),
        )
        f.put("observability.kv_events.endpoint", endpoint, from_field="kv_events_config")
    # The native API always returns meta_info.cached_tokens; the flag adds OpenAI usage details.
    if f.get("enable_cache_report"):
        reporting = f.source("enable_cache_report", True)
    else:
        reporting = _default(
            "meta_info.cached_tokens is always returned by the native API", "--enable-cache-report"
        )
    f.put("observability.cached_token_reporting.enabled", True, why=reporting)
    metrics = bool(f.get("enable_metrics"))
    f.put("observability.metrics.enabled", metrics, from_field="enable_metrics")
    if metrics:
        f.put(
            "observability.metrics.cache_hit_metrics",
            True,
            why=_default("cache-hit rate and cached-token counters", "--enable-metrics"),
        )
        f.put(
            "observability.metrics.authenticated",
            False,
            why=_default("/metrics is always open, even with API keys", "--enable-metrics"),
        )
    trace = bool(f.get("enable_trace"))
    f.put("observability.tracing.enabled", trace, from_field="enable_trace")
    if trace:
        f.put(
            "observability.tracing.endpoint", f.get("otlp_traces_endpoint"), from_field="otlp_traces_endpoint"
        )
        f.put(
            "observability.tracing.captures_content",
            False,
            why=_default("spans carry request ids and timings", "--enable-trace"),
        )
    f.put(
        "observability.profiler.enabled",
        bool(environ.get("SGLANG_TORCH_PROFILER_DIR")),
        why=Provenance(kind="env", name="SGLANG_TORCH_PROFILER_DIR"),
    )
    dump_fields = ("crash_dump_folder", "debug_tensor_dump_output_folder", "msprobe_dump_config")
    dumping = next((n for n in dump_fields if f.get(n)), None)
    f.put("observability.dumps.enabled", dumping is not None, from_field=dumping or "crash_dump_folder")
    if dumping:
        f.put("observability.dumps.path", str(f.get(dumping))[:200], from_field=dumping)
    f.put("observability.usage_stats.enabled", False, why=_default("sglang 0.5.23 sends no usage statistics"))
    f.put(
        "observability.response_store.enabled",
        bool(f.get("enable_response_store")),
        from_field="enable_response_store",
    )


def _events_endpoint(events: Any) -> str | None:
    """Where SGLang's KV event publisher binds, read with SGLang's own config model (defaults included).

    ``None`` for the ``null`` publisher, which sends nothing anywhere (as the vLLM adapter reads it).
    """
    from sglang.srt.disaggregation.kv_events import KVEventsConfig

    try:
        config = (
            KVEventsConfig.from_cli(events)
            if isinstance(events, str)
            else KVEventsConfig.model_validate(events)
        )
    except Exception as exc:  # SGLang refuses it at start; an unread endpoint must not read as "none"
        raise engine_error("--kv-events-config", exc) from None
    return None if config.publisher == "null" else str(config.endpoint)


def _api(f: _Facts, environ: Mapping[str, str]) -> None:
    api_key = bool(f.get("api_key"))
    admin_key = bool(f.get("admin_api_key"))
    f.put("api.auth_required", api_key, from_field="api_key")
    # ADMIN_OPTIONAL routes take the admin key if set, else the API key, else nothing.
    f.put(
        "api.admin_auth_required",
        admin_key or api_key,
        from_field="admin_api_key" if admin_key else "api_key",
    )
    tls = bool(f.get("ssl_certfile") and f.get("ssl_keyfile"))
    if tls:
        f.put("api.tls_terminated_by", "engine", from_field="ssl_certfile")
    f.put(
        "api.custom_logit_processors",
        bool(f.get("enable_custom_logit_processor")),
        from_field="enable_custom_logit_processor",
    )
    f.put("api.runtime_lora_updates", bool(f.get("enable_lora")), from_field="enable_lora")
    f.put(
        "api.runtime_weight_updates", True, why=_default("/update_weights_from_* routes are always mounted")
    )
    endpoints = []
    authenticated = admin_key or api_key
    for path, purpose in PRIVILEGED_ROUTES.items():
        endpoints.append({"path": path, "purpose": purpose, "enabled": True, "authenticated": authenticated})
    if environ.get("DUMPER_SERVER_PORT") == "reuse":
        endpoints.append(
            {"path": DUMPER_PREFIX, "purpose": "debug", "enabled": True, "authenticated": authenticated}
        )
    f.put(
        "api.routes",
        route_facts(ROUTE_TABLE.served({})),
        why=_default(f"routes of SGLang {ROUTE_TABLE.version}", "launch_server"),
    )
    mounted = [Provenance(kind="default", name=item["path"], value="mounted by sglang") for item in endpoints]
    f.builder.set_list("endpoints", endpoints, mounted)
