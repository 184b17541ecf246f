#!/usr/bin/env bash
# Debian packages the project needs beyond PyPI, installed only when missing.
#   (no argument)  what the tests need
#   bench          plus the HTTP load generator
set -euo pipefail
need=()
if [ "${1:-}" = "bench" ]; then
  command -v wrk >/dev/null || need+=(wrk)
fi
if [ -f scripts/apt-packages.txt ]; then
  while read -r pkg; do
    [ -z "$pkg" ] || [[ "$pkg" == \#* ]] && continue
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done < scripts/apt-packages.txt
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  echo "missing Debian packages: ${need[*]} (install them as root)" >&2; exit 1
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing Debian packages: ${need[*]}" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
