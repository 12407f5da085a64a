#!/usr/bin/env python3
"""The steps of `npm run gpu-check` (scripts/gpu-check.sh) that are not the agent's. Standard library only.

  gpu_check_report.py counter-period [--gpu I] [--seconds S]   poll NVML's energy counter; print JSON
  gpu_check_report.py job --probe PROBE.json --workload-cmd CMD --run-id ID [...]   print the agent's job
  gpu_check_report.py report RUN_DIR                              the figures, one `key: value` per line

`report` reads RUN_DIR/events.ndjson (and RUN_DIR/counter-period.json when there) and prints, in this order:
  run_dir, driver, gpu, catalog, power_reading, energy_counter, counter_update_period_ms, sampling_interval_s,
  sampling_rate_hz, idle_w, idle_after_w, load_w, loaded_w, energy_counter_j, energy_instant_integral_j,
  energy_average_integral_j, power_cap, and last `verdict: PASS | WARN (...) | FAIL (...)`.
It also writes RUN_DIR/meta.json, so `wattbench report RUN_DIR` reads the run on any machine.
"""

import argparse
import ctypes
import datetime
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOG = os.path.join(HERE, "..", "src", "core", "estimate", "data", "gpus.json")

# The load points: (id, duty cycle of the bf16 matmul loop). Then one idle point.
LOAD_POINTS = [("load-30", 0.3), ("load-60", 0.6), ("load-100", 1.0)]
CAPPED_POINT = "load-100-capped"
IDLE_POINT = "idle"

# Verdict thresholds.
ENERGY_TOLERANCE = 0.05  # counter against the integral of instant power, whole run
MIN_RATE_FRACTION = 0.5  # achieved sampling rate against the asked one
MIN_LOAD_RISE = 0.10  # full load above idle
CAP_TOLERANCE = 0.05  # capped mean power above the cap


# --- counter-period: how often NVML's energy counter changes ---

def counter_period(gpu: int, seconds: float) -> Dict[str, Any]:
    """Polls nvmlDeviceGetTotalEnergyConsumption as fast as it answers for `seconds` and times its changes."""
    lib = ctypes.CDLL(os.environ.get("WATTBENCH_NVML_LIB") or "libnvidia-ml.so.1")
    handle = ctypes.c_void_p()
    if lib.nvmlInit_v2() != 0 or lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(gpu), ctypes.byref(handle)) != 0:
        return {"ok": False, "error": "NVML did not start or has no GPU %d" % gpu}
    value = ctypes.c_ulonglong()
    polls, changes = 0, []  # type: int, List[Tuple[float, int]]
    last = None  # type: Optional[int]
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            code = lib.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(value))
            if code != 0:
                return {"ok": False, "error": "nvmlDeviceGetTotalEnergyConsumption failed (NVML error %d)" % code}
            polls += 1
            if last is not None and value.value != last:
                changes.append((time.monotonic(), value.value - last))
            last = value.value
    finally:
        lib.nvmlShutdown()
    gaps = [b[0] - a[0] for a, b in zip(changes, changes[1:])]
    return {"ok": True, "gpu": gpu, "seconds": seconds, "polls": polls, "changes": len(changes),
            "period_ms": round(statistics.median(gaps) * 1000, 3) if gaps else None,
            "poll_ms": round(seconds / polls * 1000, 4) if polls else None,
            "step_mj_median": statistics.median([d for _, d in changes]) if changes else None}


# --- job: the agent's job for this GPU ---

def cap_for(gpu: Dict[str, Any]) -> Optional[float]:
    """A cap well inside the range the driver accepts: 60 % of the default limit, at least its minimum."""
    low, high = gpu.get("min_limit_w"), gpu.get("max_limit_w")
    default = gpu.get("default_limit_w") or gpu.get("power_limit_w")
    if not (low and high and default) or low >= high:
        return None
    return float(min(high, max(low, round(0.6 * default))))


def make_job(probe: Dict[str, Any], gpu: int, workload_cmd: str, run_id: str, seconds: float, interval_s: float,
             baseline_s: float, idle_s: float) -> Dict[str, Any]:
    info = next((g for g in probe.get("gpus", []) if g.get("index") == gpu), None)
    if info is None:
        raise SystemExit("gpu_check_report: the probe found no GPU %d" % gpu)

    def point(point_id: str, duty: float, cap: Optional[float]) -> Dict[str, Any]:
        command = "%s --duty %g --seconds %g" % (workload_cmd, duty, seconds)
        return {"id": point_id, "label": "bf16 matmul, duty %g%s" % (duty, ", cap %g W" % cap if cap else ""),
                "power_cap_w": cap, "repeats": 1,
                "workload": {"kind": "command", "command": command, "time_limit_s": seconds + 120}}

    points = [point(pid, duty, None) for pid, duty in LOAD_POINTS]
    cap = cap_for(info)
    if cap is not None:
        points.append(point(CAPPED_POINT, 1.0, cap))
    points.append({"id": IDLE_POINT, "label": "idle", "power_cap_w": None, "repeats": 1,
                   "workload": {"kind": "command", "command": "sleep %g" % idle_s, "time_limit_s": idle_s + 60}})
    return {"v": 1, "run_id": run_id,
            "telemetry": {"source": "nvml", "interval_s": interval_s, "idle_baseline_s": baseline_s},
            "gpus": {"indices": [gpu], "count": 1}, "server": None, "sim": None, "points": points}


# --- report ---

def read_events(run_dir: str) -> List[Dict[str, Any]]:
    events = []
    with open(os.path.join(run_dir, "events.ndjson")) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # a garbled line (an agent killed mid-write): the rest still counts
    return events


def catalog_match(name: str) -> str:
    """The catalog entry whose deviceNames hold this exact name (case and punctuation aside), if the repo is here."""
    try:
        with open(CATALOG) as f:
            gpus = json.load(f)["gpus"]
    except (OSError, ValueError, KeyError):
        return "unknown (no catalog next to this script)"
    key = "".join(c for c in name.lower() if c.isalnum())
    for g in gpus:
        if any("".join(c for c in d.lower() if c.isalnum()) == key for d in g.get("deviceNames", [])):
            return "%s (idle %g W, TDP %g W)" % (g["id"], g["idleW"], g["tdpW"])
    return "not in catalog"


def integral(samples: List[Tuple[float, float]]) -> float:
    """Trapezoidal integral of (t, watts) in joules."""
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(samples, samples[1:]))


def mean_between(samples: List[Tuple[float, float]], t0: float, t1: float) -> Optional[float]:
    inside = [w for t, w in samples if t0 <= t <= t1]
    return sum(inside) / len(inside) if inside else None


def fmt(x: Optional[float], digits: int = 1) -> str:
    return "n/a" if x is None else "%.*f" % (digits, x)


def rel(a: Optional[float], b: Optional[float]) -> str:
    return "" if a is None or not b else " (%+.2f%% vs counter)" % ((a - b) / b * 100)


def analyse(run_dir: str) -> Tuple[List[Tuple[str, str]], List[str], List[str], Dict[str, Any]]:
    """(lines, failures, warnings, facts for meta.json)."""
    events = read_events(run_dir)
    hello = next((e for e in events if e.get("type") == "hello"), None)
    if hello is None:
        return [("run_dir", run_dir)], ["no hello event: the agent did not start (see agent.log)"], [], {}
    gpu = hello["gpus"][0] if hello.get("gpus") else {"index": 0, "name": "?"}
    index = gpu["index"]
    samples = [e for e in events if e.get("type") == "sample"]
    rows = [(s["t"], next((g for g in s["gpus"] if g["i"] == index), None), s) for s in samples]
    rows = [(t, g, s) for t, g, s in rows if g is not None]
    power = [(t, g["p_w"]) for t, g, _ in rows]
    fails, warns = [], []  # type: List[str], List[str]
    lines = [("run_dir", run_dir), ("driver", str(hello.get("driver"))),
             ("gpu", "%d %s (%s MiB)" % (index, gpu.get("name"), gpu.get("memory_mb"))),
             ("catalog", catalog_match(gpu.get("name", ""))),
             ("power_reading", str(gpu.get("power_reading", hello.get("telemetry", {}).get("power_reading")))),
             ("energy_counter", "yes" if gpu.get("energy_counter") else "no")]
    if not gpu.get("energy_counter"):
        fails.append("no energy counter")

    period = None  # type: Optional[Dict[str, Any]]
    try:
        with open(os.path.join(run_dir, "counter-period.json")) as f:
            period = json.load(f)
    except (OSError, ValueError):
        pass
    if period and period.get("ok") and period.get("period_ms") is not None:
        lines.append(("counter_update_period_ms", "%s (median of %d changes in %d polls over %g s)" % (
            period["period_ms"], period["changes"], period["polls"], period["seconds"])))
    else:
        lines.append(("counter_update_period_ms", "n/a (%s)" % ((period or {}).get("error") or "not measured")))
        warns.append("counter update period not measured")

    asked = hello.get("telemetry", {}).get("interval_s")
    dts = [s["dt_s"] for _, _, s in rows if s.get("dt_s")]
    span = power[-1][0] - power[0][0] if len(power) > 1 else 0.0
    rate = (len(power) - 1) / span if span > 0 else None
    lines.append(("sampling_interval_s", "%s asked" % asked))
    lines.append(("sampling_rate_hz", "%s (%d samples over %.1f s; dt mean %s s, max %s s)" % (
        fmt(rate), len(power), span, fmt(statistics.mean(dts) if dts else None, 4), fmt(max(dts) if dts else None, 4))))
    if rate is None or (asked and rate < MIN_RATE_FRACTION / asked):
        fails.append("sampling rate %s Hz below %d%% of the asked %g Hz" % (fmt(rate), MIN_RATE_FRACTION * 100,
                                                                            1 / asked if asked else 0))

    # Idle: the baseline (before the first point) and the idle point; load: each load point's requests' span.
    first_point = next((e["t"] for e in events if e.get("type") == "point" and e.get("state") == "start"), None)
    idle_w = mean_between(power, power[0][0], first_point) if power and first_point else None
    spans = {}  # type: Dict[str, Tuple[float, float]]
    for e in events:
        if e.get("type") == "request" and e.get("ok", True):
            t0, t1 = spans.get(e["point"], (e["t_start"], e["t_end"]))
            spans[e["point"]] = (min(t0, e["t_start"]), max(t1, e["t_end"]))
    for e in events:
        if e.get("type") == "point" and e.get("point") == IDLE_POINT:
            spans.setdefault(IDLE_POINT, (e["t"], e["t"]))
            spans[IDLE_POINT] = (min(spans[IDLE_POINT][0], e["t"]), max(spans[IDLE_POINT][1], e["t"]))
    idle_after = mean_between(power, *spans[IDLE_POINT]) if IDLE_POINT in spans else None
    loads = [(pid, mean_between(power, *spans[pid])) for pid, _ in LOAD_POINTS if pid in spans]
    lines.append(("idle_w", fmt(idle_w)))
    lines.append(("idle_after_w", fmt(idle_after)))
    lines.append(("load_w", ", ".join("%s %s" % (pid, fmt(w)) for pid, w in loads) or "n/a"))
    loaded = max((w for _, w in loads if w is not None), default=None)
    lines.append(("loaded_w", fmt(loaded)))
    if loaded is None or idle_w is None:
        fails.append("no loaded or idle power (did the load run? see workload.log)")
    elif loaded < idle_w * (1 + MIN_LOAD_RISE):
        fails.append("loaded power %.1f W not %d%% above idle %.1f W" % (loaded, MIN_LOAD_RISE * 100, idle_w))

    # Energy over the whole run: the counter against the integrals of the instant and the averaged power.
    with_e = [(t, g["e_j"]) for t, g, _ in rows if "e_j" in g]
    counter_j = with_e[-1][1] - with_e[0][1] if len(with_e) > 1 else None
    window = (with_e[0][0], with_e[-1][0]) if len(with_e) > 1 else (0.0, 0.0)
    instant_j = integral([(t, w) for t, w in power if window[0] <= t <= window[1]]) if counter_j is not None else None
    averaged = [(t, g["p_avg_w"]) for t, g, _ in rows if "p_avg_w" in g and window[0] <= t <= window[1]]
    average_j = integral(averaged) if len(averaged) > 1 else None
    lines.append(("energy_counter_j", "%s over %.1f s" % (fmt(counter_j), window[1] - window[0])))
    lines.append(("energy_instant_integral_j", fmt(instant_j) + rel(instant_j, counter_j)))
    lines.append(("energy_average_integral_j", fmt(average_j) + rel(average_j, counter_j)
                  + ("" if average_j is not None else " (no averaged reading beside the instant one)")))
    if counter_j and instant_j is not None and abs(instant_j - counter_j) > ENERGY_TOLERANCE * counter_j:
        fails.append("counter and instant-power integral differ by more than %d%%" % (ENERGY_TOLERANCE * 100))

    lines.append(("power_cap", cap_line(events, power, spans, fails, warns)))
    return lines, fails, warns, {"hello": hello, "events": events}


def cap_line(events: List[Dict[str, Any]], power: List[Tuple[float, float]], spans: Dict[str, Tuple[float, float]],
             fails: List[str], warns: List[str]) -> str:
    caps = [e for e in events if e.get("type") == "cap"]
    cap_errors = [e for e in events if e.get("type") == "error" and e.get("where") in ("cap", "caps")]
    done = next((e for e in events if e.get("type") == "done"), {})
    planned = any(e.get("type") == "point" and e.get("point") == CAPPED_POINT for e in events)
    if not planned:
        warns.append("power cap not tried")
        return "not tried (the driver reported no limit range)"
    set_event = next((e for e in caps if e.get("action") == "set"), None)
    if set_event is None:
        why = cap_errors[0]["message"] if cap_errors else "no cap event"
        warns.append("setting a power cap was not permitted")
        return "not permitted: %s; restored: %s" % (why, "yes" if done.get("caps_restored") else "no")
    g = set_event["gpus"][0]
    capped = mean_between(power, *spans[CAPPED_POINT]) if CAPPED_POINT in spans else None
    restore = next((e for e in caps if e.get("action") == "restore"), None)
    restored = bool(restore and done.get("caps_restored") and restore["gpus"][0]["to_w"] == g.get("from_w"))
    if not restored:
        fails.append("the power limit was not restored")
    if capped is not None and capped > g["to_w"] * (1 + CAP_TOLERANCE):
        fails.append("capped power %.1f W above the %g W cap" % (capped, g["to_w"]))
    return "permitted: %s -> %g W, capped mean %s W; restored to %s W: %s" % (
        g.get("from_w"), g["to_w"], fmt(capped), restore["gpus"][0]["to_w"] if restore else "n/a",
        "yes" if restored else "no")


def iso(t: float) -> str:
    return datetime.datetime.utcfromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_meta(run_dir: str, facts: Dict[str, Any]) -> None:
    """The store's meta.json (RunMeta in src/core/store/store.ts) for this run, so `wattbench report` reads it."""
    events, hello = facts.get("events", []), facts.get("hello") or {}
    job = {}  # type: Dict[str, Any]
    try:
        with open(os.path.join(run_dir, "job.json")) as f:
            job = json.load(f)
    except (OSError, ValueError):
        pass
    done = next((e for e in events if e.get("type") == "done"), None)
    meta = {
        "run_id": os.path.basename(os.path.abspath(run_dir)), "config_name": "gpu-check", "target": "local",
        "status": done["status"] if done else "error",
        "started": iso(events[0]["t"]) if events else iso(time.time()),
        "ended": iso(events[-1]["t"]) if events else iso(time.time()),
        "simulated": bool(hello.get("simulated")), "agent_version": hello.get("agent_version"),
        "driver": hello.get("driver"),
        "gpus": [{"index": g["index"], "name": g["name"]} for g in hello.get("gpus", [])],
        "points": [dict({"id": p["id"], "label": p["label"], "params": {"workload": p["workload"]["command"]}},
                        **({"power_cap_w": p["power_cap_w"]} if p.get("power_cap_w") else {}))
                   for p in job.get("points", [])],
        "remotes": [], "notes": ["written by scripts/gpu_check_report.py (npm run gpu-check)"],
    }
    with open(os.path.join(run_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)


def report(run_dir: str) -> int:
    lines, fails, warns, facts = analyse(run_dir)
    if facts:
        write_meta(run_dir, facts)
    for key, value in lines:
        print("%s: %s" % (key, value))
    if fails:
        print("verdict: FAIL (%s)" % "; ".join(fails))
        return 1
    print("verdict: %s" % ("WARN (%s)" % "; ".join(warns) if warns else "PASS"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    cp = sub.add_parser("counter-period")
    cp.add_argument("--gpu", type=int, default=0)
    cp.add_argument("--seconds", type=float, default=3.0)
    jp = sub.add_parser("job")
    jp.add_argument("--probe", required=True, help="the agent's `probe --source nvml` output")
    jp.add_argument("--workload-cmd", required=True)
    jp.add_argument("--run-id", required=True)
    jp.add_argument("--gpu", type=int, default=0)
    jp.add_argument("--seconds", type=float, default=20.0, help="per load point")
    jp.add_argument("--interval", type=float, default=0.02, help="sampling interval, s")
    jp.add_argument("--baseline", type=float, default=10.0, help="idle baseline, s")
    jp.add_argument("--idle", type=float, default=10.0, help="the idle point, s")
    rp = sub.add_parser("report")
    rp.add_argument("run_dir")
    args = parser.parse_args()
    if args.cmd == "counter-period":
        print(json.dumps(counter_period(args.gpu, args.seconds)))
        return 0
    if args.cmd == "job":
        with open(args.probe) as f:
            probe = json.load(f)
        print(json.dumps(make_job(probe, args.gpu, args.workload_cmd, args.run_id, args.seconds, args.interval,
                                  args.baseline, args.idle), indent=2))
        return 0
    if args.cmd == "report":
        return report(args.run_dir)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
