#!/usr/bin/env bash
# The one test command (`npm test`): installs what is missing, builds, lints, then runs every suite —
# unit (plain Node), agent (Python), integration (real sshd / Slurm on loopback) and end-to-end (a
# real VS Code in a real Chromium), and the short fault campaign (faults/campaign.ts --short: real sshd,
# real Slurm, faults injected). Suites: WATTBENCH_SUITES="unit agent integration faults e2e".
set -uo pipefail
cd "$(dirname "$0")/.."
suites=" ${WATTBENCH_SUITES:-unit agent integration faults e2e} "
results=test-results
mkdir -p "$results"

setup_parts=base
[[ $suites == *" e2e "* ]] && setup_parts+=" e2e"
[[ $suites == *" integration "* || $suites == *" faults "* ]] && setup_parts+=" ssh slurm"
bash scripts/setup.sh $setup_parts || exit 1

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
passed=0 failed=0 status=0

# Tallies a suite's own summary lines so the last line below covers every suite.
tally() { # name exit-code log
  local p f
  if grep -qE '^# pass [0-9]+' "$3"; then
    p=$(grep -E '^# pass [0-9]+' "$3" | tail -1 | awk '{print $3}')
    f=$(grep -E '^# fail [0-9]+' "$3" | tail -1 | awk '{print $3}')
  elif grep -qE '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$3"; then
    p=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$3" | tail -1 | awk '{print $2}')
    f=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$3" | tail -1 | awk '{print $4}')
  elif grep -qE '^Ran [0-9]+ tests?' "$3"; then
    local ran; ran=$(grep -E '^Ran [0-9]+ tests?' "$3" | tail -1 | awk '{print $2}')
    f=$(grep -oE '(failures|errors)=[0-9]+' "$3" | tail -2 | awk -F= '{s+=$2} END {print s+0}')
    p=$((ran - f))
  else
    p=0; f=1
  fi
  [ "$2" != 0 ] && [ "$f" = 0 ] && f=1
  passed=$((passed + p)); failed=$((failed + f))
  [ "$2" != 0 ] && status=1
  printf '%s: %s passed, %s failed\n' "$1" "$p" "$f"
}

run_suite() { # name command...
  local name=$1; shift
  step "$name"
  "$@" 2>&1 | tee "$results/$name.log"
  tally "$name" "${PIPESTATUS[0]}" "$results/$name.log"
}

step build
npm run --silent build >/dev/null 2>&1 && npm run --silent package >"$results/package.log" 2>&1 || { cat "$results/package.log"; echo "build failed"; exit 1; }
step lint
if ! npm run --silent lint; then
  status=1
  failed=$((failed + 1))
  echo "lint: failed (counted as one failure below)"
fi

[[ $suites == *" unit "* ]] && run_suite unit npx tsx --test --test-reporter=tap test/unit/*.test.ts
if [[ $suites == *" agent "* ]] && ls test/agent/test_*.py >/dev/null 2>&1; then
  run_suite agent python3 -m unittest discover -s test/agent -t . -v
fi
if [[ $suites == *" integration "* ]] && ls test/integration/*.test.ts >/dev/null 2>&1; then
  run_suite integration npx tsx --test --test-concurrency=1 --test-reporter=tap test/integration/*.test.ts
fi
[[ $suites == *" faults "* ]] && run_suite faults npx tsx faults/campaign.ts --short
[[ $suites == *" e2e "* ]] && run_suite e2e npx tsx --test --test-concurrency=1 --test-reporter=tap test/e2e/*.e2e.ts

echo
echo "all suites: $passed passed, $failed failed"
exit $status
