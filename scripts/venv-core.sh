#!/usr/bin/env bash
# Build .venv: pccguard (editable) with its development tools. Idempotent: a stamp
# keyed on the dependency files makes a second run instant.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP="$VENV/.pccguard-stamp"
want=$(cat pyproject.toml setup.py requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/pccguard" ]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null || true
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e '.[dev]'
echo "$want" > "$STAMP"
