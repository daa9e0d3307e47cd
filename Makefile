# The two entry points of the README, and the type check. Each sets up what it needs first.
.PHONY: report test typecheck

# Set up and run a compliance report on a bundled example with the embedded engine.
# Exit status 1 means findings (expected for this example); 2 means an error.
report:
	@bash scripts/venv-core.sh
	@.venv/bin/pccguard check examples/vllm-multitenant-default.yaml --profile multi-tenant-baseline; \
	  status=$$?; \
	  echo "pccguard exit status $$status (0 compliant, 1 findings, 2 error)"; \
	  test $$status -le 1

# Set up every environment and run the whole test suite.
test:
	@bash scripts/test.sh

# mypy strict over every installed package (core, adapters, plugins, enclave runtime), real paths in the report.
typecheck:
	@bash scripts/venv-core.sh
	@.venv/bin/python scripts/typecheck.py
