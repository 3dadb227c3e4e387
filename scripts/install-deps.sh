#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: redis-server (Debian's
# package). Tests start their own redis-server on a free port; none is
# started here.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # The package starts a system instance on 6379; the tests do not use it.
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl stop redis-server 2>/dev/null || true; fi
  $sudo service redis-server stop >/dev/null 2>&1 || true
else
  echo "install-deps: redis-server is missing and apt-get is not available; install redis-server yourself" >&2
  exit 1
fi
command -v redis-server >/dev/null
