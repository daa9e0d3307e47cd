# METADATA
# title: Instance role flips are steerable
# description: >-
#   Instance flipping switches instances between prefill and decode roles at run
#   time. When the component that flips roles sits outside the trust boundary,
#   or flips based on prompt content, it can move chosen traffic onto an
#   instance of its choice.
# custom:
#   id: PCC-T-008
#   requirement: T
#   optimization: instance_flip
#   severity: medium
#   threats: [steering through role changes, content-derived placement]
#   references: ["Apple PCC Security Guide: non-targetability", "NIST SP 800-53 SC-7"]
#   mitigation: disable:instance_flip
#   message: "Instance roles are flipped by a steerable component: {reason}"
#   remediation: Flip roles only from an attested component inside the trust boundary, on load signals that do not depend on content, or fix instance roles.
package pcc.rules.pcc_t_008

import data.pcc.lib
import rego.v1

fl := lib.opt("instance_flip")

default applicable := false

applicable if lib.maybe_enabled(fl)

deny contains lib.finding("optimizations.instance_flip.inside_trust_boundary", {"reason": "the flipping component is outside the trust boundary"}) if {
	lib.enabled(fl)
	lib.get(fl, "inside_trust_boundary") == false
}

deny contains lib.finding("optimizations.instance_flip.uses_prompt_content", {"reason": "flips depend on prompt content"}) if {
	lib.enabled(fl)
	lib.get(fl, "uses_prompt_content") == true
}

warn contains lib.unknown_finding("optimizations.instance_flip.enabled") if lib.unknown(fl, "enabled")

warn contains lib.unknown_finding("optimizations.instance_flip.inside_trust_boundary") if {
	lib.unknown(fl, "inside_trust_boundary")
}

warn contains lib.unknown_finding("optimizations.instance_flip.uses_prompt_content") if {
	lib.unknown(fl, "uses_prompt_content")
}
