"""The version-pinned table of SGLang 0.5.23 hook targets.

0.5.x internals churn between releases (``cache_finished_req`` is gone, the
unified tree is new), so every target is named here once; the startup check
refuses to run when a target is missing or was not patched.
"""

from __future__ import annotations

SERVER_ARGS_RESOLVE = "sglang.srt.server_args.ServerArgs.resolve_once"
SCHEDULER_INIT = "sglang.srt.managers.scheduler.Scheduler.__init__"
SCHEDULER_INIT_POOLS = "sglang.srt.managers.scheduler.Scheduler.init_running_status"
SCHEDULER_INIT_INFO = "sglang.srt.managers.scheduler.Scheduler.get_init_info"
SCHEDULER_HANDLE_GENERATE = "sglang.srt.managers.scheduler.Scheduler.handle_generate_request"
SCHEDULER_NEXT_BATCH = "sglang.srt.managers.scheduler.Scheduler.get_next_batch_to_run"
SCHEDULER_ON_IDLE = "sglang.srt.managers.scheduler.Scheduler.on_idle"
SCHEDULER_FLUSH = "sglang.srt.managers.scheduler.Scheduler.flush_cache"
SCHEDULER_INTERNAL_STATE = "sglang.srt.managers.scheduler.Scheduler.get_internal_state"
SCHEDULER_QUEUE_LIMIT = "sglang.srt.managers.scheduler.Scheduler._abort_on_queued_limit"
TOKENIZER_GENERATE = "sglang.srt.managers.tokenizer_manager.TokenizerManager.generate_request"
TOKENIZER_CONFIGURE_LOGGING = "sglang.srt.managers.tokenizer_manager.TokenizerManager.configure_logging"
TOKEN_ALLOCATOR_FREE = "sglang.srt.mem_cache.allocator.token.TokenToKVPoolAllocator.free"
TOKEN_ALLOCATOR_CLEAR = "sglang.srt.mem_cache.allocator.token.TokenToKVPoolAllocator.clear"
PAGED_ALLOCATOR_RELEASE = "sglang.srt.mem_cache.allocator.paged.PagedTokenToKVPoolAllocator._release_page_ids"
PAGED_ALLOCATOR_CLEAR = "sglang.srt.mem_cache.allocator.paged.PagedTokenToKVPoolAllocator.clear"
RADIX_FACTORY = "sglang.srt.mem_cache.registry.default_radix_cache_factory"
POLICY_VALIDATE = "sglang.srt.managers.schedule_policy.SchedulePolicy._validate_and_adjust_policy"
NGRAM_INIT = "sglang.srt.speculative.ngram_worker.NGRAMWorker.__init__"
NGRAM_UPDATE = "sglang.srt.speculative.ngram_worker.NGRAMWorker._update_ngram_corpus"
NGRAM_PREPARE = "sglang.srt.speculative.ngram_worker.NGRAMWorker._prepare_draft_tokens"
AUTH_DECIDE = "sglang.srt.utils.auth.decide_request_auth"
AUTH_HAS_FORCE = "sglang.srt.utils.auth.app_has_admin_force_endpoints"
HTTP_SETUP = "sglang.srt.entrypoints.http_server._setup_and_run_http_server"
HTTP_WARMUP = "sglang.srt.entrypoints.http_server._wait_and_warmup"
