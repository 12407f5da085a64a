#!/usr/bin/env bash
# A real-GPU check of Wattbench's measurements on this host (an NVIDIA GPU, Python 3, PyTorch with CUDA):
# the agent samples NVML while a bf16 matmul loop loads the GPU at three duty cycles, once under a power cap,
# then idles; scripts/gpu_check_report.py prints the figures and a verdict. Under 4 minutes; nothing leaves
# the host. The run directory it writes is read elsewhere by `wattbench report DIR`.
#
#   scripts/gpu-check.sh [--out DIR] [--gpu I] [--seconds S] [--interval S] [--baseline S] [--idle S]
#                        [--agent PYZ] [--workload-cmd CMD]
#
# --agent: the agent archive (default dist/wattbench_agent.pyz, built when absent). --workload-cmd replaces
# `python3 scripts/gpu_check_load.py` (it is given --duty D --seconds S); the tests use it with the NVML stub.
# Exit status: 0 on PASS or WARN, 1 on FAIL, 2 when the check could not run.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$PWD/gpu-check-runs"; gpu=0; seconds=20; interval=0.02; baseline=10; idle=10; workload=""; pyz=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift ;;
    --gpu) gpu="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --interval) interval="$2"; shift ;;
    --baseline) baseline="$2"; shift ;;
    --idle) idle="$2"; shift ;;
    --workload-cmd) workload="$2"; shift ;;
    --agent) pyz="$2"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

fail() { echo "gpu-check: $*" >&2; exit 2; }
command -v python3 >/dev/null || fail "python3 not found"
if [ -z "$workload" ]; then
  python3 -c 'import torch' 2>/dev/null || fail "PyTorch is not installed for python3 (pip install torch), and the load needs it"
  python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || fail "PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)"
  workload="python3 $root/scripts/gpu_check_load.py"
fi

if [ -z "$pyz" ]; then pyz="$root/dist/wattbench_agent.pyz"; fi
if [ ! -f "$pyz" ]; then
  mkdir -p "$root/dist"
  python3 "$root/scripts/build_agent.py" "$pyz" >/dev/null
fi

run_id="gpucheck-$(date -u +%Y%m%d-%H%M%S)-$$"
run="$out/$run_id"
mkdir -p "$run"
report="python3 $root/scripts/gpu_check_report.py"

python3 "$pyz" probe --source nvml > "$run/probe.json" || fail "no GPU through NVML: $(cat "$run/probe.json")"
$report counter-period --gpu "$gpu" --seconds 3 > "$run/counter-period.json"
$report job --probe "$run/probe.json" --workload-cmd "$workload" --run-id "$run_id" --gpu "$gpu" \
  --seconds "$seconds" --interval "$interval" --baseline "$baseline" --idle "$idle" > "$run/job.json"
python3 "$pyz" run --job "$run/job.json" --run-dir "$run" > /dev/null \
  || echo "gpu-check: the agent exited with status $? (the report says why)" >&2
$report report "$run"
