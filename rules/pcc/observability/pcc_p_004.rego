# METADATA
# title: KV-cache events are an open side door into the cache
# description: >-
#   A KV-event stream is a data channel from the engine's memory manager to
#   whoever subscribes. Token ids in it expose prompts; raw cache salts in it
#   let a subscriber send requests under another tenant's salt and read that
#   tenant's cache; a publisher bound to every interface (tcp://*:5557, vLLM's
#   default endpoint) serves anyone who can reach the port, with no
#   authentication.
# custom:
#   id: PCC-P-004
#   requirement: P
#   optimization: kv_events
#   severity: high
#   threats: [token ids and salts published on a socket, unauthenticated subscribers]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "NIST SP 800-53 AC-4", "NIST SP 800-53 AC-6", "CWE-306", "CWE-200"]
#   mitigation: disable:kv_events
#   message: "KV-cache events expose cache internals: {reason}"
#   remediation: Disable KV-cache events, or publish salted block hashes only (no token ids, no salts) on a loopback or authenticated endpoint.
package pcc.rules.pcc_p_004

import data.pcc.lib
import rego.v1

ev := lib.obs("kv_events")

endpoint := lib.get(ev, "endpoint")

# Bind addresses that listen on every interface.
wildcard_markers := ["*", "0.0.0.0", "[::]"]

default applicable := false

applicable if lib.maybe_enabled(ev)

open_endpoint if {
	is_string(endpoint)
	some marker in wildcard_markers
	contains(endpoint, marker)
}

deny contains lib.finding("observability.kv_events.includes_token_ids", {"reason": "events carry prompt token ids"}) if {
	lib.enabled(ev)
	lib.get(ev, "includes_token_ids") == true
}

deny contains lib.finding("observability.kv_events.includes_salt", {"reason": "events carry raw cache salts"}) if {
	lib.enabled(ev)
	lib.get(ev, "includes_salt") == true
}

deny contains lib.finding("observability.kv_events.endpoint", {"reason": "the publisher listens on every interface"}) if {
	lib.enabled(ev)
	open_endpoint
}

warn contains lib.unknown_finding("observability.kv_events.enabled") if lib.unknown(ev, "enabled")

warn contains lib.unknown_finding("observability.kv_events.includes_token_ids") if lib.unknown(ev, "includes_token_ids")

warn contains lib.unknown_finding("observability.kv_events.includes_salt") if lib.unknown(ev, "includes_salt")

warn contains lib.unknown_finding("observability.kv_events.endpoint") if endpoint == null
