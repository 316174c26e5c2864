#!/usr/bin/env bash
# Prometheus, promtool and node-exporter from Debian's packages (apt-get download + dpkg -x),
# extracted into .tools/prometheus: no system service, nothing installed system-wide.
# Idempotent: exits 0 at once when the three binaries are there. Refreshes the package lists
# (apt-get update, as root or with sudo) only when the download fails without them.
# Usage: observability/install-prometheus.sh [DEST]   (DEST defaults to .tools/prometheus)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-.tools/prometheus}"
packages=(prometheus prometheus-node-exporter)
have() {
  for bin in prometheus promtool prometheus-node-exporter; do
    [ -x "$dest/usr/bin/$bin" ] || return 1
  done
}
if have; then
  echo "prometheus: already in $dest"
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  echo "ERROR: installing Prometheus needs apt-get and dpkg (a Debian or Ubuntu machine)" >&2
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
have || { echo "ERROR: the packages did not hold the expected binaries in $dest/usr/bin" >&2; exit 1; }
echo "prometheus: $("$dest/usr/bin/prometheus" --version 2>&1 | head -1) in $dest"
