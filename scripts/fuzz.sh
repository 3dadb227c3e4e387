#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time ($1, default 10s).
set -euo pipefail
fuzztime=${1:-10s}
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    if ! out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" 2>&1); then
      echo "$out"
      exit 1
    fi
  done
done
