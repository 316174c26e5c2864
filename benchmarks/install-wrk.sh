#!/usr/bin/env bash
# wrk (the HTTP load generator benchmarks/serving.py drives) from Debian's packages, with the
# LuaJIT library it links against, extracted into .tools/wrk (scripts/extract-debs.sh): nothing
# installed system-wide. benchmarks/serving.py uses a wrk on PATH first, then this one.
# Idempotent: exits 0 at once when the binary is there and runs.
# Usage: benchmarks/install-wrk.sh [DEST]   (DEST defaults to .tools/wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-.tools/wrk}"
packages=(wrk libluajit-5.1-2)
have() {
  # wrk --version exits 1 after printing its banner; with a library missing it prints no banner
  [ -x "$dest/usr/bin/wrk" ] || return 1
  local banner
  banner="$(LD_LIBRARY_PATH="$dest/usr/lib/x86_64-linux-gnu" "$dest/usr/bin/wrk" --version 2>&1 || true)"
  [[ "$banner" == wrk\ * ]]
}
if have; then
  echo "wrk: already in $dest"
  exit 0
fi
bash scripts/extract-debs.sh "$dest" "${packages[@]}"
have || { echo "ERROR: the packages did not give a working wrk in $dest/usr/bin" >&2; exit 1; }
echo "wrk: installed in $dest"
