#!/usr/bin/env bash
# Build .venv-enclave: the environment of pccguard.enclave_runtime and tests/enclave.
#
# Idempotent: a stamp inside the venv records the hash of the requirement files and of
# pyproject.toml/setup.py; when nothing changed the script exits at once. torch is held
# to the CPU build by requirements/constraints.txt (any other torch pulls a CUDA build).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${ENCLAVE_VENV:-.venv-enclave}"
python="${PYTHON:-python3}"

inputs=(requirements/enclave.txt requirements/constraints.txt pyproject.toml setup.py)
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.pccguard-enclave-stamp"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "venv-enclave: $venv is up to date"
    exit 0
fi

bash scripts/need-disk.sh venv-enclave 3 "$venv"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q -c requirements/constraints.txt -r requirements/enclave.txt
"${pip[@]}" install -q -c requirements/constraints.txt -e '.[dev]'
# The import check fails the build rather than the first test.
"$venv/bin/python" -c 'import torch, transformers, peft, scipy, cryptography, pccguard.enclave_runtime'
echo "$want" > "$stamp"
echo "venv-enclave: built $venv"
