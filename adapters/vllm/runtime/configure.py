"""Write a decided plan into the engine configuration, using vLLM's own configuration hooks.

``distributed_executor_backend`` selects the enclave executor (when
``hybrid_executor`` is installed), ``scheduler_cls`` selects pccguard's scheduler, ``worker_extension_cls`` adds
the zeroing extension to every worker, the offloading connector's
``spec_name``/``spec_module_path`` selects the encrypting spec, and the plan
itself rides in ``additional_config`` to the engine-core process. With
``tenant_cache_salt`` the process's salt key set rides beside it, as an
attribute of the configuration object that is not one of its fields. A
configuration that already names another scheduler or worker extension cannot
be combined safely: the start is refused.
"""

from __future__ import annotations

from typing import Any

from pccguard.adapters.vllm.runtime import hybrid
from pccguard.adapters.vllm.runtime.plan import KEYS_ATTR, PLAN_KEY, RuntimePlan
from pccguard.enforcement.tenancy.salts import process_keys
from pccguard.errors import EnforcementError
from pccguard.facts.builder import qualname

OFFLOAD_SPEC = "EncryptedCPUOffloadingSpec"
OFFLOAD_MODULE = "pccguard.adapters.vllm.runtime.offload"


def apply_plan(vllm_config: Any, plan: RuntimePlan) -> None:
    from pccguard.adapters.vllm.runtime.scheduler import ASYNC_SCHEDULER_QUALNAME, SCHEDULER_QUALNAME
    from pccguard.adapters.vllm.runtime.worker import WORKER_EXTENSION_QUALNAME

    if plan.has(hybrid.MITIGATION):
        hybrid.select(vllm_config)
    sched = vllm_config.scheduler_config
    current = sched.scheduler_cls
    if current and not qualname(current).startswith("pccguard."):
        raise EnforcementError(
            f"pccguard refuses to start vllm: --scheduler-cls {qualname(current)} replaces the scheduler "
            "pccguard enforces its mitigations in"
        )
    sched.scheduler_cls = ASYNC_SCHEDULER_QUALNAME if sched.async_scheduling else SCHEDULER_QUALNAME

    par = vllm_config.parallel_config
    if plan.has("scrub_freed_kv"):
        ext = par.worker_extension_cls
        if ext and ext != WORKER_EXTENSION_QUALNAME:
            raise EnforcementError(
                f"pccguard refuses to start vllm: --worker-extension-cls {ext} is already set; "
                "scrub_freed_kv needs pccguard's worker extension"
            )
        par.worker_extension_cls = WORKER_EXTENSION_QUALNAME

    if plan.has("encrypt_offload"):
        ktc = vllm_config.kv_transfer_config
        extra = dict(ktc.kv_connector_extra_config or {})
        extra["spec_name"] = OFFLOAD_SPEC
        extra["spec_module_path"] = OFFLOAD_MODULE
        ktc.kv_connector_extra_config = extra

    if plan.has("tenant_cache_salt"):
        if int(par._api_process_count) > 1:
            raise EnforcementError(
                "pccguard refuses to start vllm: tenant_cache_salt needs one API server process "
                "(--api-server-count 1): each API server would mint salts the engine core cannot open"
            )
        # The key set rides to the engine-core process inside the configuration object (pickled over the
        # process-start pipe); it is not a field, so vLLM neither logs nor hashes it.
        setattr(vllm_config, KEYS_ATTR, process_keys())

    if not isinstance(vllm_config.additional_config, dict):
        raise EnforcementError("pccguard refuses to start vllm: additional_config is not a mapping")
    vllm_config.additional_config[PLAN_KEY] = plan.to_dict()
