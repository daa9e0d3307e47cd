# METADATA
# title: Client-supplied code is a runtime access path
# description: >-
#   A client-supplied logit processor is code that runs with the engine's
#   privileges, outside any review, on a path that bypasses the log and metric
#   allowlists. It is privileged runtime access granted to every client.
# custom:
#   id: PCC-P-008
#   requirement: P
#   optimization: custom_logit_processors
#   severity: critical
#   threats: [client code runs inside the engine, deserialization of untrusted data]
#   references: ["Apple PCC Security Guide: no privileged runtime access", "CWE-502", "NIST SP 800-53 AC-6"]
#   mitigation: disable:custom_logit_processors
#   message: "Clients can run their own code in the engine (custom_logit_processors: {api.custom_logit_processors})"
#   remediation: Disable client-supplied logit processors (SGLang without --enable-custom-logit-processor); ship vetted processors with the build instead.
package pcc.rules.pcc_p_008

import data.pcc.lib
import rego.v1

clp := lib.fact(["api", "custom_logit_processors"])

default applicable := false

applicable if is_object(lib.fact(["api"]))

deny contains lib.finding("api.custom_logit_processors", {}) if clp == true

warn contains lib.unknown_finding("api.custom_logit_processors") if clp == null
