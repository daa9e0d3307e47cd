# Helpers every rule uses. Facts are read through object.get so that a missing
# or null fact is "unknown" (never false); rules warn on unknown facts.
package pcc.lib

import rego.v1

# The profile's parameters (rules/profiles/*.yaml), e.g. param("allow_isolated_prefix_cache", false).
param(name, fallback) := object.get(input, ["profile", "params", name], fallback)

# One catalog optimization's facts, {} when absent.
opt(id) := object.get(input, ["facts", "optimizations", id], {})

# One observability facet, {} when absent.
obs(id) := object.get(input, ["facts", "observability", id], {})

# A fact by path array; null when missing (unknown).
fact(path) := object.get(input.facts, path, null)

# Value of key in obj, null when missing.
get(obj, key) := object.get(obj, key, null)

# Enabled is true / unknown (null) / false.
enabled(obj) if object.get(obj, "enabled", null) == true

unknown(obj, key) if object.get(obj, key, null) == null

# Not known to be off: rules on risky features apply unless the feature is known off.
maybe_enabled(obj) if object.get(obj, "enabled", null) != false

multi_tenant if fact(["tenancy", "mode"]) == "multi"

# Unknown tenancy is treated as multi-tenant: the safe assumption.
maybe_multi_tenant if fact(["tenancy", "mode"]) != "single"

finding(path, params) := {"fact": path, "params": params}

# A finding that only a different mitigation than the rule's default can satisfy
# (e.g. under a profile that forbids the feature: "disable:prefix_caching").
# The rule counts as enforced only when every finding's mitigation is active.
finding_fixed_by(path, params, mitigation) := {"fact": path, "params": params, "mitigation": mitigation}

# A finding raised because a fact the rule needs is unknown.
unknown_finding(path) := {"fact": path, "params": {}, "unknown": true}
