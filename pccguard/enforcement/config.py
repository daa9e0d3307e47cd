"""Serving-plugin configuration: one YAML file named by ``PCCGUARD_CONFIG``.

Every field has a documented default, so a plugin with no file still runs the
strict profile, fail-closed. Secrets never appear in the file: the OPA token is
read from the environment variable the file names, and cache-salt keys are
generated in memory at start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pccguard.errors import InputError
from pccguard.files.sourcefile import load_document
from pccguard.files.validation import describe

if TYPE_CHECKING:  # the evaluator loads the policy engine (regopy): not at import, the ingress reads this too
    from pccguard.evaluation.settings import PolicySettings

CONFIG_ENV = "PCCGUARD_CONFIG"


class TenancyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["single", "multi"] = "multi"
    identified_by: Literal["header", "api_key"] = "header"
    tenant_header: str = "x-pccguard-tenant"
    #: When identified by API key: a YAML file mapping SHA-256 hex digests of keys to tenant ids.
    api_keys_file: Path | None = None
    #: How long a salt token minted at the ingress is accepted by the engine core.
    salt_token_max_age_seconds: float = Field(default=600.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _key_file_for_api_keys(self) -> TenancyConfig:
        if self.mode == "multi" and self.identified_by == "api_key" and self.api_keys_file is None:
            raise ValueError("identified_by: api_key needs api_keys_file")
        return self


class ModelConfig(BaseModel):
    """What the operator declares about the model: no engine flag says whether its weights are private.

    Unset fields stay unknown facts, so a rule that needs them warns instead of
    passing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: Literal["public", "private"] | None = None
    private_adapters: bool | None = None
    accelerator_trusted: bool | None = None


class LogTemplateConfig(BaseModel):
    """One more log record ``allowlist_logs`` lets through: a logger (or its children) and a message template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    logger: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    message: str = Field(min_length=1, max_length=512)


class MitigationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scrub_freed_kv: bool = True
    tenant_cache_salt: bool = True
    prefix_cache_ttl_seconds: float | None = Field(default=300.0, gt=0)
    encrypt_offload: bool = True
    close_privileged_endpoints: bool = True
    #: Drop the series that reveal prefix-cache hits from the served ``/metrics`` (vLLM).
    drop_cache_hit_metrics: bool = True
    #: Select the enclave executor when a rule requires it (vLLM, LLaMA models).
    hybrid_executor: bool = True
    #: Its partition plan: ``auto`` (Mode P for a public base, all-enclave for a
    #: private one), ``default``, ``all-enclave`` or a plan file.
    hybrid_executor_plan: str = Field(default="auto", min_length=1)
    #: Residue sampling while serving (with ``scrub_freed_kv``): how often a few free KV blocks are read
    #: for zeros (``None``: never), how many, and what found residue does (``stop_admitting``: refuse new
    #: requests for the rest of the start; ``audit``: the event and counter only).
    residue_sample_interval_seconds: float | None = Field(default=5.0, gt=0)
    residue_sample_blocks: int = Field(default=8, ge=1, le=4096)
    residue_on_found: Literal["stop_admitting", "audit"] = "stop_admitting"
    #: Let only allowlisted log records reach a handler when a rule asks for it (request or output logging on).
    allowlist_logs: bool = True
    #: Records it lets through besides pccguard's own and the engine's built-in list (their arguments must
    #: still be numbers or short tokens).
    log_allowlist: list[LogTemplateConfig] = Field(default_factory=list, max_length=256)


class PluginConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    profile: str = "pcc-strict"
    rules_dirs: list[Path] = Field(default_factory=list)
    waivers: Path | None = None
    fail_on: Literal["critical", "high", "medium", "low", "info"] = "low"
    fail_mode: Literal["closed", "open"] = Field(
        default="closed", description="closed: refuse to start on any pccguard or policy error"
    )
    opa_url: str | None = None
    opa_token_env: str = "PCCGUARD_OPA_TOKEN"
    opa_timeout: float = Field(default=5.0, gt=0)
    tenancy: TenancyConfig = Field(default_factory=TenancyConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    mitigations: MitigationConfig = Field(default_factory=MitigationConfig)

    def policy_settings(self) -> PolicySettings:
        """The policy this plugin starts engines under, as ``pccguard check`` would load it.

        One difference, on purpose: at start the profile's ``unknown_facts``
        governs every severity (see ``Evaluator.unknown_high_fails``).
        """
        from pccguard.evaluation.settings import PolicySettings

        return PolicySettings.from_options(self, unknown_high_fails=False)


def load_plugin_config(environ: dict[str, str] | None = None) -> PluginConfig:
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_ENV)
    if not path:
        return PluginConfig()
    doc = load_document(path)
    if doc.data is None:
        return PluginConfig()
    try:
        return PluginConfig.model_validate(doc.data)
    except ValidationError as exc:
        message, line = describe(exc, doc)
        raise InputError(message, where=f"{path}:{line}" if line else path) from None
