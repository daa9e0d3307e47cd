"""Stage 4 in a running engine: the start decision, tenancy, audit events and the shared mitigations."""
