#!/usr/bin/env bash
# Debian packages extracted into a project folder (apt-get download + dpkg -x): nothing installed
# system-wide, no service started. Refreshes the package lists (apt-get update, as root or with
# sudo) only when the download fails without them. Extracts next to DEST, then moves into place:
# never a half-extracted DEST. Used by observability/install-prometheus.sh and
# benchmarks/install-wrk.sh, which check what they need before and after.
# Usage: scripts/extract-debs.sh DEST PACKAGE...
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: $0 DEST PACKAGE..." >&2
  exit 2
fi
dest="$1"
shift
packages=("$@")
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  echo "ERROR: extracting ${packages[*]} needs apt-get and dpkg (a Debian or Ubuntu machine)" >&2
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
rm -rf "$staging"
mkdir -p "$staging"
for deb in "$tmp"/*.deb; do
  dpkg -x "$deb" "$staging"
done
rm -rf "$dest"
mv "$staging" "$dest"
