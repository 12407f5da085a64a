#!/usr/bin/env bash
# `npm run bench`: installs what the figures need (Chromium, OpenSSH, code-server: scripts/setup.sh),
# builds and packages the extension exactly as it ships, then runs bench/main.ts.
# Arguments pick figure groups: `npm run bench -- ingest live-chart` (`loadgen`: bench/loadgen.py).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh base e2e ssh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# package = build (dist/*.js, measured by several figures) + the .vsix that code-server installs.
npm run --silent package >"$log" 2>&1 || { cat "$log"; echo "bench: build failed" >&2; exit 1; }
# The load generator's ceiling (bench/loadgen.py, Python): with no arguments, or when `loadgen` is one of them.
groups=()
loadgen=$(( $# == 0 ))
for arg in "$@"; do
  if [ "$arg" = loadgen ]; then loadgen=1; else groups+=("$arg"); fi
done
if [ "$loadgen" = 1 ]; then python3 bench/loadgen.py; fi
if [ $# -gt 0 ] && [ ${#groups[@]} -eq 0 ]; then exit 0; fi
exec node_modules/.bin/tsx bench/main.ts "${groups[@]}"
