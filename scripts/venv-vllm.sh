#!/usr/bin/env bash
# Build .venv-vllm: vLLM 0.33.0 on the CPU build of torch, plus pccguard (editable) and its dev tools.
#
# Idempotent: a stamp file records the hash of the requirement files and of
# pyproject.toml/setup.py; when it matches, the script returns at once.
# Every package is pinned and installed with --no-deps, so no resolver can
# swap in a CUDA build of torch or upgrade a pin. The script fails if any
# NVIDIA/CUDA package ends up in the environment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV_VLLM:-$ROOT/.venv-vllm}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.pccguard-stamp"

cd "$ROOT"
want="$(cat requirements/vllm.txt requirements/constraints.txt pyproject.toml setup.py scripts/venv-vllm.sh \
  | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/python" ]]; then
  echo "venv-vllm: up to date ($VENV)"
  exit 0
fi

bash "$ROOT/scripts/need-disk.sh" venv-vllm 5 "$VENV"
start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

# One pass, fully pinned, no dependency resolution: the pins are the environment.
"${pip[@]}" install -q --no-deps -c requirements/constraints.txt -r requirements/vllm.txt
# pccguard itself, editable, without touching the pins above.
"${pip[@]}" install -q --no-deps -e .

if "${pip[@]}" list --format=freeze 2>/dev/null | grep -i -E '^(nvidia|cuda|triton)' ; then
  echo "venv-vllm: CUDA packages found in $VENV (see above); refusing" >&2
  exit 1
fi
"$VENV/bin/python" -c "import torch, vllm; assert not torch.version.cuda, torch.version.cuda"

echo "$want" > "$STAMP"
echo "venv-vllm: built $VENV in $(( $(date +%s) - start )) s"
