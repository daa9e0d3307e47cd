"""``vllm serve`` argument sets for the verdict table (shared by the test and its maintenance script)."""

from __future__ import annotations

SUFFIX = '{"method": "suffix", "num_speculative_tokens": 4}'
NGRAM = '{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3}'
EAGLE = '{"method": "eagle", "model": "some/eagle-head", "num_speculative_tokens": 2}'
CUSTOM = '{"method": "custom_class", "num_speculative_tokens": 2}'
NIXL = '{"kv_connector": "NixlConnector", "kv_role": "kv_both"}'
PRODUCER = '{"kv_connector": "NixlConnector", "kv_role": "kv_producer"}'
LMCACHE = '{"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}'
EVENTS = '{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557"}'
PROFILER = '{"profiler": "torch", "torch_profiler_dir": "/tmp/prof"}'

#: id -> (extra vllm serve arguments, extra environment)
CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "defaults": ([], {}),
    "no-prefix-caching": (["--no-enable-prefix-caching"], {}),
    "prefix-caching-xxhash": (["--enable-prefix-caching", "--prefix-caching-hash-algo", "xxhash"], {}),
    "no-chunked-prefill": (["--no-enable-prefix-caching", "--no-enable-chunked-prefill"], {}),
    "block-size-32": (["--no-enable-prefix-caching", "--block-size", "32"], {}),
    "spec-suffix": (["--no-enable-prefix-caching", "--speculative-config", SUFFIX], {}),
    "spec-ngram": (["--no-enable-prefix-caching", "--speculative-config", NGRAM], {}),
    "spec-eagle": (["--no-enable-prefix-caching", "--speculative-config", EAGLE], {}),
    "spec-custom-class": (["--no-enable-prefix-caching", "--speculative-config", CUSTOM], {}),
    "offload-native": (["--no-enable-prefix-caching", "--kv-offloading-size", "4"], {}),
    "offload-lmcache": (
        ["--no-enable-prefix-caching", "--kv-offloading-size", "4", "--kv-offloading-backend", "lmcache"],
        {},
    ),
    "kv-transfer-nixl": (["--no-enable-prefix-caching", "--kv-transfer-config", NIXL], {}),
    "pd-producer": (["--no-enable-prefix-caching", "--kv-transfer-config", PRODUCER], {}),
    "lmcache-connector": (["--no-enable-prefix-caching", "--kv-transfer-config", LMCACHE], {}),
    "priority": (["--no-enable-prefix-caching", "--scheduling-policy", "priority"], {}),
    "tensor-parallel-2": (["--no-enable-prefix-caching", "-tp", "2"], {}),
    "pipeline-parallel-2": (["--no-enable-prefix-caching", "-pp", "2"], {}),
    "sleep-mode": (["--no-enable-prefix-caching", "--enable-sleep-mode"], {}),
    "mm-cache-off": (["--no-enable-prefix-caching", "--mm-processor-cache-gb", "0"], {}),
    "log-requests": (["--no-enable-prefix-caching", "--enable-log-requests"], {}),
    "log-requests-debug": (
        ["--no-enable-prefix-caching", "--enable-log-requests"],
        {"VLLM_LOGGING_LEVEL": "DEBUG"},
    ),
    "log-outputs": (["--no-enable-prefix-caching", "--enable-log-outputs"], {}),
    "kv-events": (["--no-enable-prefix-caching", "--kv-events-config", EVENTS], {}),
    "tracing": (["--no-enable-prefix-caching", "--otlp-traces-endpoint", "http://collector:4317"], {}),
    "profiler": (["--no-enable-prefix-caching", "--profiler-config", PROFILER], {}),
    "cached-token-details": (["--enable-prompt-tokens-details"], {}),
    "dev-mode": (["--no-enable-prefix-caching"], {"VLLM_SERVER_DEV_MODE": "1"}),
    "runtime-lora": (["--no-enable-prefix-caching"], {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true"}),
    "debug-dump": (["--no-enable-prefix-caching"], {"VLLM_DEBUG_DUMP_PATH": "/tmp/dump"}),
    "response-logging-env": (["--no-enable-prefix-caching"], {"VLLM_DEBUG_LOG_API_SERVER_RESPONSE": "1"}),
    "usage-stats-on": (
        ["--no-enable-prefix-caching"],
        {"VLLM_NO_USAGE_STATS": "0", "VLLM_DO_NOT_TRACK": "0"},
    ),
    "api-key": (["--no-enable-prefix-caching", "--api-key", "sk-very-secret-value"], {}),
}
