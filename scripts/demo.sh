#!/usr/bin/env bash
# `npm run demo`: installs what is missing, builds the .vsix, and serves Wattbench in code-server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh base e2e
npm run --silent build >/dev/null 2>&1
npm run --silent package >/dev/null
exec node_modules/.bin/tsx scripts/demo.ts "$@"
