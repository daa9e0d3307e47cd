"""Facts: the engine-neutral description of a serving deployment.

Rules read only facts. Three conventions hold everywhere:

* ``None`` means *unknown*, never *false*. A collector that cannot tell whether
  prefix caching is on leaves ``enabled`` as ``None``; rules treat unknown as a
  warning, never as a pass.
* Every model forbids unknown fields, so a typo in a facts file is an input
  error instead of a silently ignored (and therefore passing) setting.
* Provenance lives beside the values in ``provenance``, keyed by the dotted
  fact path (``optimizations.prefix_caching.enabled``). Keeping it out of the
  values keeps rules short; reports use it for SARIF locations.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

SCHEMA_VERSION: Literal["1"] = "1"

Tristate = bool | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Provenance(_Model):
    """Where a fact came from: a flag, an environment variable, a file line, a probe or a default."""

    kind: Literal["flag", "env", "file", "config", "runtime", "default", "probe"]
    name: str | None = Field(default=None, description="Flag or variable name, e.g. --enable-prefix-caching")
    uri: str | None = Field(default=None, description="File the fact was read from")
    line: int | None = Field(default=None, ge=1)
    value: str | None = Field(default=None, description="The raw value as given (never secrets)")


# --------------------------------------------------------------------------- deployment


class Deployment(_Model):
    name: str = "unnamed"
    engine: str = Field(description="Serving engine id, e.g. vllm, sglang, tgi, tensorrt-llm")
    engine_version: str | None = None
    environment: Literal["production", "staging", "development", "test"] | None = None
    region: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def version_tuple(self) -> list[int] | None:
        """The engine version as a comparable tuple; rules never compare version strings."""
        return parse_version(self.engine_version)


def parse_version(text: str | None) -> list[int] | None:
    """``"0.33.0rc1+cpu"`` → ``[0, 33, 0]``; ``None`` when no leading number is present."""
    if not text:
        return None
    match = re.match(r"^v?(\d+(?:\.\d+)*)", text.strip())
    if not match:
        return None
    return [int(part) for part in match.group(1).split(".")]


class Tenancy(_Model):
    mode: Literal["single", "multi"] | None = None
    identified_by: Literal["none", "api_key", "header", "mtls", "oidc", "network"] | None = None
    tenant_header: str | None = None
    authenticated_at: Literal["engine", "gateway", "load_balancer", "none"] | None = None


# --------------------------------------------------------------------------- optimizations


class Optimization(_Model):
    """Common shape of every catalog optimization: on, off or unknown."""

    enabled: Tristate = None


class Paging(Optimization):
    block_size: int | None = None
    scrub_on_free: Tristate = None


class TokenAttention(Optimization):
    scrub_on_free: Tristate = None


class PrefixCaching(Optimization):
    isolation: Literal["none", "client_salt", "server_salt", "per_tenant_instance"] | None = None
    ttl_seconds: float | None = Field(default=None, ge=0)
    hash_algorithm: str | None = None
    eviction_policy: str | None = None
    scrub_on_evict: Tristate = None
    backend: str | None = None


class DiskOffloading(Optimization):
    tiers: list[Literal["cpu", "disk", "remote"]] | None = None
    backend: str | None = None
    size_gib: float | None = None
    encrypted: Tristate = None
    cipher: str | None = None
    key_scope: Literal["process", "tenant", "persistent", "shared"] | None = None


class KVTransfer(Optimization):
    """Duplication, pulling, migration and disaggregation: KV leaves the instance."""

    backend: str | None = None
    crosses_hosts: Tristate = None
    encrypted_transport: Tristate = None
    synchronized_expiry: Tristate = None
    role: str | None = None


class ChunkedPrefill(Optimization):
    chunks_enter_prefix_cache: Tristate = None
    max_batched_tokens: int | None = None


class Speculation(Optimization):
    method: str | None = None
    cross_request_state: Tristate = None
    store_scope: Literal["request", "tenant", "global"] | None = None
    differential_privacy: Tristate = None


class Parallelism(Optimization):
    size: int | None = Field(default=None, ge=1)
    crosses_hosts: Tristate = None
    encrypted_interconnect: Tristate = None


class PriorityScheduling(Optimization):
    priority_source: Literal["client", "server_fixed", "user_derived", "content_derived"] | None = None


class Scheduler(Optimization):
    """Schedulers and routers: request-level prediction, machine-level, instance flip."""

    inside_trust_boundary: Tristate = None
    uses_prompt_content: Tristate = None


class CacheAwareScheduling(Optimization):
    policy: str | None = None
    scope: Literal["global", "tenant"] | None = None


class GlobalProfiling(Optimization):
    captures_content: Tristate = None


class ClosedSource(Optimization):
    """Enabled means: at least one component whose code is not open."""

    components: list[str] = Field(default_factory=list)


class Optimizations(_Model):
    paging: Paging = Field(default_factory=Paging)
    token_attention: TokenAttention = Field(default_factory=TokenAttention)
    prefix_caching: PrefixCaching = Field(default_factory=PrefixCaching)
    disk_offloading: DiskOffloading = Field(default_factory=DiskOffloading)
    duplication: KVTransfer = Field(default_factory=KVTransfer)
    pulling: KVTransfer = Field(default_factory=KVTransfer)
    request_migration: KVTransfer = Field(default_factory=KVTransfer)
    disaggregated_prefill: KVTransfer = Field(default_factory=KVTransfer)
    continuous_batching: Optimization = Field(default_factory=Optimization)
    chunked_prefill: ChunkedPrefill = Field(default_factory=ChunkedPrefill)
    prepack_prefill: Optimization = Field(default_factory=Optimization)
    speculation: Speculation = Field(default_factory=Speculation)
    context_speculation: Speculation = Field(default_factory=Speculation)
    database_speculation: Speculation = Field(default_factory=Speculation)
    tensor_parallelism: Parallelism = Field(default_factory=Parallelism)
    pipeline_parallelism: Parallelism = Field(default_factory=Parallelism)
    sequence_parallelism: Parallelism = Field(default_factory=Parallelism)
    priority_scheduling: PriorityScheduling = Field(default_factory=PriorityScheduling)
    request_level_prediction: Scheduler = Field(default_factory=Scheduler)
    machine_level_scheduler: Scheduler = Field(default_factory=Scheduler)
    instance_flip: Scheduler = Field(default_factory=Scheduler)
    cache_aware_scheduling: CacheAwareScheduling = Field(default_factory=CacheAwareScheduling)
    global_profiling: GlobalProfiling = Field(default_factory=GlobalProfiling)
    closed_source: ClosedSource = Field(default_factory=ClosedSource)


# --------------------------------------------------------------------------- observability

ContentLevel = Literal["none", "metadata", "prompts", "outputs", "full"]


class Logging(_Model):
    enabled: Tristate = None
    content: ContentLevel | None = None
    allowlisted: Tristate = None


class KVEvents(_Model):
    enabled: Tristate = None
    includes_token_ids: Tristate = None
    includes_salt: Tristate = None
    endpoint: str | None = None


class Toggle(_Model):
    enabled: Tristate = None


class Metrics(_Model):
    enabled: Tristate = None
    cache_hit_metrics: Tristate = None
    authenticated: Tristate = None


class Tracing(_Model):
    enabled: Tristate = None
    endpoint: str | None = None
    captures_content: Tristate = None


class Dumps(_Model):
    enabled: Tristate = None
    path: str | None = None


class Observability(_Model):
    request_logging: Logging = Field(default_factory=Logging)
    output_logging: Logging = Field(default_factory=Logging)
    kv_events: KVEvents = Field(default_factory=KVEvents)
    cached_token_reporting: Toggle = Field(default_factory=Toggle)
    metrics: Metrics = Field(default_factory=Metrics)
    tracing: Tracing = Field(default_factory=Tracing)
    profiler: Toggle = Field(default_factory=Toggle)
    dumps: Dumps = Field(default_factory=Dumps)
    usage_stats: Toggle = Field(default_factory=Toggle)
    response_store: Toggle = Field(default_factory=Toggle)


# --------------------------------------------------------------------------- endpoints, API, TEE, model

EndpointPurpose = Literal["inference", "admin", "dev", "debug", "metrics", "profiler", "health", "weights"]


class Endpoint(_Model):
    path: str
    purpose: EndpointPurpose
    enabled: Tristate = True
    authenticated: Tristate = None


class Route(_Model):
    """One HTTP route the server answers, and whether it reaches the engine outside the tenant boundary."""

    path: str = Field(
        min_length=1, description="Path template as the server registers it, e.g. /v1/completions"
    )
    methods: list[str] = Field(min_length=1, description="HTTP methods, or WEBSOCKET, or * for a mount")
    carries_prompt: Tristate = Field(default=None, description="Whether a request on it carries a prompt")
    tenant_bound: Tristate = Field(
        default=None,
        description="Whether every request on it is refused without an identified tenant and gets the "
        "server's salt (never the client's)",
    )


class Api(_Model):
    auth_required: Tristate = None
    admin_auth_required: Tristate = None
    tls_terminated_by: Literal["engine", "gateway", "load_balancer", "none"] | None = None
    custom_logit_processors: Tristate = None
    runtime_lora_updates: Tristate = None
    runtime_weight_updates: Tristate = None
    routes: list[Route] | None = Field(
        default=None, description="The routes the server serves; unknown (null) unless enumerated or declared"
    )


class Tee(_Model):
    kind: Literal["none", "sgx", "tdx", "sev_snp", "nvidia_cc", "software"] | None = None
    attested: Tristate = None
    measurement_published: Tristate = None
    transparency_log: Tristate = None
    reproducible_build: Tristate = None


class HybridPlan(_Model):
    """What a checked enclave–accelerator partition plan lets the accelerator see (counts, no tensors)."""

    plan: str
    plan_digest: str
    scheme: str
    insecure_obfuscation: bool
    integrity_check: str
    prompts_protected: bool
    ops_total: int = Field(ge=0)
    ops_offloaded: int = Field(ge=0)
    private_unblinded_offloads: int = Field(ge=0)
    private_obfuscated_offloads: int = Field(ge=0)
    nonlinear_offloads: int = Field(ge=0)


class ModelPrivacy(_Model):
    weights: Literal["public", "private"] | None = None
    private_adapters: Tristate = None
    accelerator_trusted: Tristate = None
    name: str | None = None
    hybrid_plan: HybridPlan | None = None


class SelfTestRecord(_Model):
    """What one start-time self-test exercised on the running engine, and whether it held.

    Counts say how much of the engine the check covered (KV blocks written and
    read back, KV tensors, ranks), so a report tells an operator on which
    hardware, and how much of it, a mitigation was proven.
    """

    mitigation: str
    passed: bool
    checked: str = Field(description="What the check exercised, in one line (never data or secrets)")
    found: str | None = Field(default=None, description="What a failing check found")
    blocks: int = Field(default=0, ge=0)
    layers: int = Field(default=0, ge=0)
    ranks: int = Field(default=0, ge=0)
    device: str | None = None
    seconds: float = Field(default=0.0, ge=0)

    @field_validator("mitigation")
    @classmethod
    def _known_mitigation(cls, value: str) -> str:
        from pccguard.facts.mitigations import validate_mitigation

        return validate_mitigation(value)


class Runtime(_Model):
    """What pccguard itself installed in the running engine (empty for a static check).

    Only facts a serving plugin builds for itself (``plugin_active: true``) can make
    a rule ``enforced``, and only for mitigations its start-time self-tests proved
    on the running engine (``mitigations_verified``). A document that lists
    mitigations without ``plugin_active`` only *declares* them; such a rule is
    ``declared``, which fails like ``fail``.
    """

    plugin_active: bool = Field(
        default=False,
        description="True only in facts a running pccguard plugin built; without it, mitigations are claims",
    )
    mitigations_active: list[str] = Field(
        default_factory=list,
        description="Mitigations installed by the running plugin (declared only, unless plugin_active)",
    )
    mitigations_verified: list[str] = Field(
        default_factory=list,
        description="Installed mitigations the running engine proved by a start-time self-test",
    )
    selftests: list[SelfTestRecord] = Field(
        default_factory=list, description="What each start-time self-test exercised and found"
    )
    fail_mode: Literal["closed", "open"] | None = None

    @field_validator("mitigations_active", "mitigations_verified")
    @classmethod
    def _known_mitigations(cls, value: list[str]) -> list[str]:
        from pccguard.facts.mitigations import validate_mitigation

        for item in value:
            validate_mitigation(item)
        return sorted(set(value))


class DeploymentFacts(_Model):
    schema_version: Literal["1"] = SCHEMA_VERSION
    deployment: Deployment
    tenancy: Tenancy = Field(default_factory=Tenancy)
    optimizations: Optimizations = Field(default_factory=Optimizations)
    observability: Observability = Field(default_factory=Observability)
    endpoints: list[Endpoint] = Field(default_factory=list)
    api: Api = Field(default_factory=Api)
    tee: Tee = Field(default_factory=Tee)
    model: ModelPrivacy = Field(default_factory=ModelPrivacy)
    runtime: Runtime = Field(default_factory=Runtime)
    provenance: dict[str, Provenance] = Field(default_factory=dict)

    def policy_input(self) -> dict[str, Any]:
        """The document rules see as ``input.facts`` (provenance stays on the Python side)."""
        return self.model_dump(mode="json", exclude={"provenance"})

    def provenance_for(self, path: str) -> Provenance | None:
        """Provenance of ``path`` or of its nearest ancestor that has one."""
        parts = path.split(".")
        while parts:
            found = self.provenance.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None


def facts_json_schema() -> dict[str, Any]:
    """The JSON Schema printed by ``pccguard schema``."""
    schema = DeploymentFacts.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://pccguard.dev/schema/facts-v{SCHEMA_VERSION}.json"
    return schema
