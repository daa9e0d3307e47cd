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
LOG="$VENV.install.log"
bash scripts/need-disk.sh venv-core 1 "$VENV"
echo "setting up $VENV (log: $LOG)"
python3 -m venv "$VENV"
if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
     && "$VENV/bin/python" -m pip install --disable-pip-version-check -c requirements/constraints.txt -e '.[dev]'; } >"$LOG" 2>&1; then
  tail -n 30 "$LOG" >&2
  echo "setting up $VENV failed; full log in $LOG" >&2
  exit 2
fi
echo "$want" > "$STAMP"
