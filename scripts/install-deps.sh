#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, from Debian's packages:
# redis-server (also run as redis-server --sentinel), redis-tools
# (redis-cli, which creates the test Redis Clusters), iproute2 (ip, for
# the test across network namespaces) and chromium (the live view's browser
# test drives it headless). Tests start their own redis-servers on free
# ports; none is started here.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The redis package starts a system instance on 6379; the tests do not use it.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    if command -v systemctl >/dev/null 2>&1; then $sudo systemctl stop redis-server 2>/dev/null || true; fi
    $sudo service redis-server stop >/dev/null 2>&1 || true
  fi
else
  echo "install-deps: ${missing[*]} missing and apt-get is not available; install them yourself" >&2
  exit 1
fi
command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v ip >/dev/null
command -v chromium >/dev/null || command -v chromium-browser >/dev/null
