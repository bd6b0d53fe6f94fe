#!/usr/bin/env bash
# Install the system packages the tests need (redis-server, chromium) with
# apt-get when they are missing. Without root or apt-get, stop and name them.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${FLARE_BENCH:-}" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "The tests need these system packages: ${need[*]}" >&2
  echo "Install them, for example: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
