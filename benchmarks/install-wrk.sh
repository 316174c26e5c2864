#!/usr/bin/env bash
# wrk (the HTTP load generator benchmarks/serving.py drives) from Debian's packages (apt-get download
# + dpkg -x), with the LuaJIT library it links against, extracted into .tools/wrk: nothing
# installed system-wide. benchmarks/serving.py uses a wrk on PATH first, then this one.
# Idempotent: exits 0 at once when the binary is there and runs. Refreshes the package lists
# (apt-get update, as root or with sudo) only when the download fails without them.
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
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  echo "ERROR: installing wrk needs apt-get and dpkg (a Debian or Ubuntu machine)" >&2
  exit 1
fi
tmp="$(mktemp -d)"
staging="$dest.partial"
trap 'rm -rf "$tmp" "$staging"' EXIT
download() { (cd "$tmp" && apt-get download -qq "${packages[@]}") 2>"$tmp/apt.err"; }
if ! download; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && download; }; then
    cat "$tmp/apt.err" >&2
    echo "ERROR: could not download ${packages[*]} with apt-get" >&2
    exit 1
  fi
fi
# extract next to the destination, then move into place: never a half-extracted $dest
rm -rf "$staging"
mkdir -p "$staging"
for deb in "$tmp"/*.deb; do
  dpkg -x "$deb" "$staging"
done
rm -rf "$dest"
mv "$staging" "$dest"
have || { echo "ERROR: the packages did not give a working wrk in $dest/usr/bin" >&2; exit 1; }
echo "wrk: installed in $dest"
