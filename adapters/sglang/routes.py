"""SGLang 0.5.23's privileged HTTP routes and what each one can do.

All 42 are ``ADMIN_OPTIONAL`` in 0.5.23: open to anyone when no key is set,
open to the API key when only ``--api-key`` is set. The list is static so that
``pccguard check`` need not import SGLang's HTTP server; a test compares it with
the live FastAPI app so that a version bump cannot silently drop a route.
The runtime closes routes by their live auth level, not by this list.
"""

from __future__ import annotations

from typing import Literal

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
