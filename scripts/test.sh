#!/usr/bin/env bash
# Set up every environment and run the whole test suite.
#
# Each group runs in its own environment because the engines pin incompatible
# dependency sets: tests/core in .venv, tests/<group> in .venv-<group> built by
# scripts/venv-<group>.sh; tests/e2e runs in .venv-vllm. Every group runs even if an earlier one fails; the
# closing line adds up all groups, and the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
RESULTS=$(mktemp -d)
trap 'rm -rf "$RESULTS"' EXIT
status=0

step() { echo; echo "==> $*"; }

step "core environment"
bash scripts/venv-core.sh || { echo "core environment failed"; exit 2; }

step "lint: ruff, mypy"
.venv/bin/ruff check . || status=1
.venv/bin/ruff format --check . || status=1
.venv/bin/python scripts/typecheck.py || status=1  # mypy strict over every installed package

step "rulebook: pccguard rules lint, rules test"
.venv/bin/pccguard rules lint || status=1
.venv/bin/pccguard rules test || status=1

run_group() {  # name venv
  local name=$1 venv=$2
  step "tests/$name ($venv)"
  "$venv/bin/python" -m pytest "tests/$name" -q -p no:cacheprovider --junitxml="$RESULTS/$name.xml" || status=1
}

run_group core .venv
for group in vllm sglang enclave; do
  if [ -d "tests/$group" ] && [ -f "scripts/venv-$group.sh" ]; then
    step "$group environment"
    if bash "scripts/venv-$group.sh"; then
      run_group "$group" ".venv-$group"
      # End to end (vllm serve with the enclave executor, pccguard probe) needs vLLM: same environment.
      [ "$group" = vllm ] && run_group e2e .venv-vllm
    else
      echo "$group environment failed"; status=1
    fi
  fi
done

.venv/bin/python - "$RESULTS" <<'PY'
import sys, pathlib, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        total, fail, err, skip = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        print(f"  {path.stem:8} {total - fail - err - skip} passed, {fail + err} failed, {skip} skipped")
        passed += total - fail - err - skip; failed += fail + err; skipped += skip
print(f"all groups: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
