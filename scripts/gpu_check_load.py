#!/usr/bin/env python3
"""The load of `npm run gpu-check`: a bf16 matrix-multiply loop on one GPU at a duty cycle, for a while.

Run by the agent as a `command` workload (docs/protocol.md): every half second it prints one line
`WATTBENCH {"output_tokens": N, "prompt_tokens": 0, "latency_s": S, "t_start": T0, "t_end": T1}`, N being the
matmuls done in that slice, so the run's "tokens" are matmuls and its J/token is joules per matmul. Lines
other than WATTBENCH ones (the achieved TFLOP/s at the end) go to the run's workload.log.

  gpu_check_load.py --size 8192 --duty 0.6 --seconds 20            # needs PyTorch with CUDA
  gpu_check_load.py --stub-watts 150 --duty 0.6 --seconds 2        # tests: no GPU, drives the NVML stub

--stub-watts: instead of a GPU, tell test/agent/nvml_stub.c's load file ($NVML_STUB_LOAD_FILE) that the GPU
now demands duty × W more watts, and take it back at the end, so the stub's power follows the load."""

import argparse
import json
import os
import sys
import time

SLICE_S = 0.5  # one WATTBENCH line per slice
DUTY_PERIOD_S = 0.1  # within a slice: busy duty × this, then idle the rest, over and over


def report(count: int, t_start: float, t_end: float) -> None:
    print("WATTBENCH " + json.dumps({"output_tokens": count, "prompt_tokens": 0, "latency_s": round(t_end - t_start, 6),
                                     "t_start": t_start, "t_end": t_end}), flush=True)


def stub_load(watts: float, duty: float, seconds: float) -> int:
    path = os.environ.get("NVML_STUB_LOAD_FILE")
    if not path:
        print("gpu_check_load: --stub-watts needs NVML_STUB_LOAD_FILE (the NVML stub's load file)", file=sys.stderr)
        return 2

    def step(w: float) -> None:
        with open(path, "a") as f:
            f.write("%.6f %.3f\n" % (time.time(), w))

    step(watts * duty)
    try:
        end = time.time() + seconds
        while time.time() < end:
            t0 = time.time()
            time.sleep(min(SLICE_S, max(0.0, end - t0)))
            report(int(round((time.time() - t0) * 100 * duty)), t0, time.time())
    finally:
        step(0.0)
    return 0


def gpu_load(size: int, duty: float, seconds: float) -> int:
    try:
        import torch  # type: ignore
    except ImportError:
        print("gpu_check_load: PyTorch is not installed (pip install torch), and gpu-check's load needs it",
              file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_check_load: PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    a = torch.randn(size, size, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(size, size, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):  # kernels chosen and clocks up before the first slice counts
        a @ b
    torch.cuda.synchronize()
    # How many matmuls fill DUTY_PERIOD_S × duty: timed once, so a slice's busy part is whole matmuls.
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    per_matmul_s = (time.perf_counter() - t) / 10
    burst = max(1, int(DUTY_PERIOD_S * duty / per_matmul_s))
    total, busy_s = 0, 0.0
    end = time.time() + seconds
    while time.time() < end:
        t0, count = time.time(), 0
        while time.time() - t0 < SLICE_S:
            p0 = time.perf_counter()
            for _ in range(burst):
                a @ b
            torch.cuda.synchronize()
            busy = time.perf_counter() - p0
            busy_s += busy
            count += burst
            if duty < 1.0:
                time.sleep(max(0.0, busy * (1.0 - duty) / duty))
        total += count
        report(count, t0, time.time())
    flops = 2.0 * size ** 3 * total
    print("matmuls %d of %dx%d bf16, %.1f TFLOP/s while busy, duty %.2f" % (total, size, size,
                                                                          flops / busy_s / 1e12 if busy_s else 0, duty))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="matrix side (bf16 N×N @ N×N)")
    parser.add_argument("--duty", type=float, default=1.0, help="fraction of the time busy, 0 < duty <= 1")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stub-watts", type=float, default=None, help="tests: drive the NVML stub, no GPU")
    args = parser.parse_args()
    if not 0 < args.duty <= 1:
        parser.error("--duty must be in (0, 1]")
    if args.stub_watts is not None:
        return stub_load(args.stub_watts, args.duty, args.seconds)
    return gpu_load(args.size, args.duty, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
