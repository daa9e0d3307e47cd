# METADATA
# title: TLS is terminated outside the trust boundary
# description: >-
#   When a load balancer or gateway terminates TLS, it sees every prompt and
#   completion in plaintext, and the privacy of requests rests on a component
#   outside the trust boundary that nobody can verify. PCC's load balancers and
#   gateways hold no decryption keys; requests are encrypted to the attested
#   nodes. Serving without TLS at all exposes requests to the whole path.
# custom:
#   id: PCC-E-009
#   requirement: E
#   optimization: tls_termination
#   severity: high
#   threats: [a load balancer sees plaintext requests, plaintext on the network]
#   references: ["Apple PCC Security Guide: enforceable guarantees", "NIST SP 800-53 SC-8", "NIST SP 800-53 SC-7", "CWE-319"]
#   mitigation: disable:tls_termination
#   message: "Requests are decrypted outside the engine (tls_terminated_by: {api.tls_terminated_by})"
#   remediation: Terminate TLS (or OHTTP, or application-layer encryption) inside the attested engine and let load balancers forward encrypted traffic only.
package pcc.rules.pcc_e_009

import data.pcc.lib
import rego.v1

api := object.get(input.facts, "api", {})

default applicable := false

applicable if is_object(api)

deny contains lib.finding("api.tls_terminated_by", {}) if {
	lib.get(api, "tls_terminated_by") in {"load_balancer", "gateway", "none"}
}

warn contains lib.unknown_finding("api.tls_terminated_by") if lib.unknown(api, "tls_terminated_by")
