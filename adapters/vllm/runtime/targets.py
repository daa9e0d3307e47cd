"""The version-pinned table of vLLM 0.33.0 hook targets.

vLLM's internals move between releases, so every function pccguard wraps is
named here once, grouped by the process that must carry the hook when it
serves: the frontend (API server or ``LLM`` process) and the engine core. The
start is refused when a target is missing or was not patched
(``pccguard.enforcement.patching``).
"""

from __future__ import annotations

#: The vLLM release these names were read from.
VERSION = "0.33.0"

# Frontend: where the configuration is resolved and requests are validated and routed.
CREATE_ENGINE_CONFIG = "vllm.engine.arg_utils.EngineArgs.create_engine_config"
VALIDATE_PARAMS = "vllm.v1.engine.input_processor.InputProcessor._validate_params"
#: The binding ``build_app`` calls (``app`` imports it from ``vllm.entrypoints.serve.middleware.register``).
INIT_MIDDLEWARE = "vllm.entrypoints.launchers.app.init_entrypoints_middleware"

# Engine core: where it is built (then proven by the self-tests), requests become ``Request`` objects
# and the busy loop runs.
ENGINE_CORE_INIT = "vllm.v1.engine.core.EngineCore.__init__"
PREPROCESS_ADD_REQUEST = "vllm.v1.engine.core.EngineCore.preprocess_add_request"
BUSY_LOOP = "vllm.v1.engine.core.EngineCoreProc.run_busy_loop"
#: The data-parallel engine core has a busy loop of its own.
DP_BUSY_LOOP = "vllm.v1.engine.core.DPEngineCoreProc.run_busy_loop"
#: The last attribute ``EngineCore.__init__`` sets, once everything the self-tests drive exists: an
#: engine-core process started by ``spawn`` loads the plugin from inside ``__init__``, too late for the
#: ``__init__`` hook, so the self-tests run when this is set, still before the engine reports ready.
ENGINE_CORE_BUILT = "vllm.v1.engine.core.EngineCore._idle_state_callbacks"
#: Called once after every step, by the busy loop and by the in-process client (residue sampling).
POST_STEP = "vllm.v1.engine.core.EngineCore.post_step"
#: Where the engine-core process refuses new work while paused: residue found refuses there too.
REJECT_ADD_WHILE_PAUSED = "vllm.v1.engine.core.EngineCoreProc._reject_add_while_paused"
#: Added (the engine has no such method): the engine-core utility the API server calls for pccguard's counters.
ENGINE_CORE_COUNTERS = "vllm.v1.engine.core.EngineCore.pccguard_counters"
