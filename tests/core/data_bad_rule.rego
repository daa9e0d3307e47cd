# METADATA
# title: Every forbidden construct
# description: Used by the lint tests; never shipped.
# custom:
#   id: BAD-S-001
#   requirement: S
#   optimization: paging
#   severity: low
#   threats: [none]
#   references: [none]
#   mitigation: scrub_freed_kv
#   message: "bad"
package pcc.rules.bad_s_001

import rego.v1

default applicable := true

deny contains x if {
	x := sprintf("%q", [input.facts.deployment.engine])
	semver.compare("1.0.0", "0.9.0") == 1
	regex.match("(?i)abc", "ABC")
	time.parse_rfc3339_ns("2099-01-01T00:00:00Z") > 0
	http.send({"method": "get", "url": "http://example.com"})
	net.cidr_contains("10.0.0.0/8", "10.0.0.1")
	json.match_schema({}, {})
	print("debug")
	rego.metadata.rule()
	y := data.pcc.rules.pcc_s_001.deny with input as {}
}
