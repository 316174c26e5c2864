#!/usr/bin/env bash
# Prometheus, promtool and node-exporter from Debian's packages (scripts/extract-debs.sh),
# extracted into .tools/prometheus: no system service, nothing installed system-wide.
# Idempotent: exits 0 at once when the three binaries are there.
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
bash scripts/extract-debs.sh "$dest" "${packages[@]}"
have || { echo "ERROR: the packages did not hold the expected binaries in $dest/usr/bin" >&2; exit 1; }
echo "prometheus: $("$dest/usr/bin/prometheus" --version 2>&1 | head -1) in $dest"
