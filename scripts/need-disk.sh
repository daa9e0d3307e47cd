#!/usr/bin/env bash
# Usage: need-disk.sh NAME GIB DIR
#
# Refuse to build an environment when the disk under DIR (and under the temporary
# directory pip unpacks wheels into) has less than GIB GiB free. Without it, a full
# disk surfaces halfway through pip as an OSError buried in an install log, and the
# environment is left half built; with it, the build stops before it starts, in one
# line naming the directory and both sizes.
set -euo pipefail
if [[ $# -ne 3 || ! "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: need-disk.sh NAME GIB DIR" >&2
  exit 2
fi
name=$1 need_gib=$2 dir=$3
while [[ ! -e "$dir" ]]; do dir=$(dirname "$dir"); done  # the environment may not exist yet
dir=$(cd "$dir" && pwd)
for where in "$dir" "${TMPDIR:-/tmp}"; do
  free_kib=$(df -Pk "$where" | awk 'NR == 2 { print $4 }')
  if [[ ! "$free_kib" =~ ^[0-9]+$ ]]; then
    echo "$name: cannot read the free space under $where; building anyway" >&2
    continue
  fi
  if (( free_kib < need_gib * 1024 * 1024 )); then
    printf '%s: needs about %d GiB free under %s to build, %.1f GiB available\n' \
      "$name" "$need_gib" "$where" "$(awk -v k="$free_kib" 'BEGIN { print k / 1048576 }')" >&2
    exit 2
  fi
done
