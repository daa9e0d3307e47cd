#!/usr/bin/env bash
# Build the SGLang test environment .venv-sglang (idempotent).
#
# SGLang 0.5.23 declares torch==2.14.1 (CUDA) and torchvision as dependencies;
# letting pip resolve them would pull several GB of CUDA libraries and replace the
# CPU torch that requirements/constraints.txt pins. So torch comes first from the
# constraints, everything else from the fully pinned requirements/sglang.txt with
# --no-deps, and pccguard last, editable, against the same pins.
#
# A stamp keyed on the hash of the requirement files and this script makes a rerun
# instant; delete .venv-sglang (or change a pin) to rebuild.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${PCCGUARD_SGLANG_VENV:-.venv-sglang}"
python="${PYTHON:-python3}"
stamp="$venv/.pccguard-stamp"

key="$(cat requirements/constraints.txt requirements/sglang.txt scripts/venv-sglang.sh pyproject.toml \
  | sha256sum | cut -d' ' -f1)"
stub_path() {  # the test-only torchvision stub (tests/sglang/stubs/README.md), for this checkout
  local site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$root/tests/sglang/stubs" > "$site/pccguard_test_torchvision_stub.pth"
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" && -x "$venv/bin/python" ]]; then
  stub_path
  echo "venv-sglang: $venv is up to date"
  exit 0
fi

bash scripts/need-disk.sh venv-sglang 5 "$venv"
echo "venv-sglang: building $venv"
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
pins=(-c requirements/constraints.txt)

# 1. the CPU build of torch (on local disk), pinned
"${pip[@]}" install "${pins[@]}" torch==2.13.0
# 2. sglang, triton and the rest of the working set, exactly as pinned, no resolver
"${pip[@]}" install "${pins[@]}" --no-deps -r requirements/sglang.txt
# 3. pccguard itself (editable, with dev tools) without moving any pin
"${pip[@]}" install "${pins[@]}" -c requirements/sglang.txt -e '.[dev]'

# 4. test-only torchvision import stub (see tests/sglang/stubs/README.md)
stub_path

# 5. smoke: the pins hold and SGLang's memory layer imports
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import torch

assert torch.__version__.startswith("2.13.0"), torch.__version__
assert md.version("sglang") == "0.5.23", md.version("sglang")
import torchvision

assert getattr(torchvision, "PCCGUARD_TEST_STUB", False), "expected the test-only torchvision stub"
from sglang.srt.mem_cache.radix_cache import RadixCache  # noqa: F401
PY

echo "$key" > "$stamp"
echo "venv-sglang: ready"
