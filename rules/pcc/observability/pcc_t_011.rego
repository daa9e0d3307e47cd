# METADATA
# title: Metrics reveal prefix-cache hits
# description: >-
#   Prefix-cache hit and query counters (vllm:prefix_cache_hits, SGLang
#   cache_hit_rate) are a hit oracle: on a quiet server, an attacker reads the
#   counter before and after a probe to learn whether someone else's prompt
#   starts that way, and watching it reveals when a targeted user is active.
#   Exposed without authentication (vLLM serves /metrics without the API key),
#   anyone can read them; a profile may forbid such metrics altogether
#   (allow_metrics).
# custom:
#   id: PCC-T-011
#   requirement: T
#   optimization: cache_hit_metrics
#   severity: medium
#   threats: [hit-rate side channel through metrics, activity of a targeted user]
#   references: ["OWASP LLM02:2025 Sensitive Information Disclosure", "CWE-203", "NIST SP 800-53 SC-31", "Gu et al., ICML 2025 (Auditing Prompt Caching)"]
#   mitigation: disable:cache_hit_metrics
#   message: "Cache-hit metrics are exported: {reason}"
#   remediation: Drop cache-hit series from exported metrics (pccguard mitigation disable:cache_hit_metrics, which the vLLM plugin applies to /metrics) or require authentication on the metrics endpoint.
package pcc.rules.pcc_t_011

import data.pcc.lib
import rego.v1

m := lib.obs("metrics")

pc := lib.opt("prefix_caching")

allow_metrics := lib.param("allow_metrics", false)

default applicable := false

applicable if {
	lib.maybe_enabled(m)
	lib.get(m, "cache_hit_metrics") != false
	lib.maybe_enabled(pc)
}

deny contains lib.finding("observability.metrics.authenticated", {"reason": "the metrics endpoint needs no authentication"}) if {
	lib.enabled(m)
	lib.get(m, "cache_hit_metrics") == true
	lib.get(m, "authenticated") == false
}

deny contains lib.finding("observability.metrics.cache_hit_metrics", {"reason": "the profile does not allow cache-hit metrics (allow_metrics: false)"}) if {
	lib.enabled(m)
	lib.get(m, "cache_hit_metrics") == true
	allow_metrics != true
}

warn contains lib.unknown_finding("observability.metrics.enabled") if lib.unknown(m, "enabled")

warn contains lib.unknown_finding("observability.metrics.cache_hit_metrics") if lib.unknown(m, "cache_hit_metrics")

warn contains lib.unknown_finding("observability.metrics.authenticated") if {
	lib.get(m, "cache_hit_metrics") == true
	lib.unknown(m, "authenticated")
}
