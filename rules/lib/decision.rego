# The decision document both engines return. pccguard attaches metadata,
# renders messages and computes verdicts in Python; this package only reports,
# per rule package, whether it applies and which findings it raised.
package pcc

import rego.v1

applicable[pkg] := flag if {
	some pkg
	flag := data.pcc.rules[pkg].applicable
}

denies[pkg] := findings if {
	some pkg
	findings := data.pcc.rules[pkg].deny
}

warns[pkg] := findings if {
	some pkg
	findings := data.pcc.rules[pkg].warn
}

decision := {"schema": 1, "applicable": applicable, "deny": denies, "warn": warns}
