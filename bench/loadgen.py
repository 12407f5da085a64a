"""The load generator's ceiling: the agent's LoadRunner (as it ships, writing real events) against
bench/loadgen_server.py in a separate process, at concurrency 1 to 2,048. For each scenario: offered and
measured chunks/s, measured against true inter-token latency (p50/p99) and TTFT, and the agent's CPU
time per chunk. Writes bench/loadgen-results.json and bench/loadgen-results.md.

    python3 bench/loadgen.py [--seconds S] [--concurrency 1,64,...] [--out DIR]

Truth: the server's own send times: its gaps between one stream's sends, and per request the time from the
client handing the request to its socket (the request event's t_start) to the server handing the first token
to its own (each prompt is distinct; both stamps are CLOCK_MONOTONIC on this machine), so a request that
waited for the server to read it is in the truth as in the measurement. The server's schedule: gap, TTFT +
a phase uniform in [0, gap) per stream, so streams that start together do not send in the same instant; it
keeps each stream's connection alive for its next request, as uvicorn does."""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agent"))

from wattbench_agent.events import EventWriter  # noqa: E402
from wattbench_agent.job import PointConfig, WorkloadConfig  # noqa: E402
from wattbench_agent.load import Endpoint, LoadRunner, PointCounts, quantile, raise_open_file_limit  # noqa: E402
from wattbench_agent.prompts import RequestSpec  # noqa: E402
from wattbench_agent import util  # noqa: E402

TARGET_CHUNKS_PER_S = 20000.0
CPU_TARGET_FROM_CHUNKS_PER_S = 1000.0  # the CPU-per-chunk target is judged from this offered rate up
MIN_GAP_MS = 10.0  # 100 tokens/s per stream, a fast decode
TTFT_MS = 20.0


class BenchAgent:
    """What LoadRunner uses of run.AgentRun; events go to a real EventWriter (their cost is the agent's)."""

    def __init__(self, path: str) -> None:
        self.cancel = threading.Event()
        self.events = EventWriter(path, mirror_stdout=False)
        self.diag = None

    def server_dead(self) -> bool:
        return False

    def check_server_after_failure(self) -> None:
        pass


def start_server(gap_ms: float, ttft_ms: float, spread: bool = True) -> "tuple[subprocess.Popen, int]":
    process = subprocess.Popen([sys.executable, os.path.join(HERE, "loadgen_server.py"), "--gap-ms", str(gap_ms),
                                "--ttft-ms", str(ttft_ms)] + (["--spread"] if spread else []), stdout=subprocess.PIPE)
    line = process.stdout.readline().decode()
    if not line.startswith("PORT "):
        process.kill()
        raise SystemExit("loadgen: the stand-in server did not start")
    return process, int(line.split()[1])


def get_json(port: int, path: str) -> Dict[str, Any]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value * 1000, 4)


def scenario(concurrency: int, seconds: float, spread: bool = True,
             chunks_per_s: float = TARGET_CHUNKS_PER_S, rate: Optional[float] = None) -> Dict[str, Any]:
    """`rate`: a request-rate point instead (Poisson arrivals at `rate`/s, each request `chunks_per_s / rate`
    tokens 10 ms apart, so about `rate` × its duration in flight); `concurrency` is then unused."""
    if rate is not None:
        gap_ms = MIN_GAP_MS
        tokens = max(10, int(chunks_per_s / rate))
        count = max(20, int(rate * seconds))
    else:
        gap_ms = max(MIN_GAP_MS, concurrency / chunks_per_s * 1000)
        # two waves of requests, each lasting about seconds/2
        tokens = max(10, int(seconds / 2 / (gap_ms / 1000)))
        count = 2 * concurrency
    load_before = os.getloadavg()[0]
    process, port = start_server(gap_ms, TTFT_MS, spread)
    try:
        workload = WorkloadConfig(kind="http", dataset=None, num_prompts=count, max_tokens=tokens,
                                  concurrency=None if rate is not None else concurrency, request_rate=rate,
                                  warmup_requests=0, temperature=0.0,
                                  ignore_eos=True, time_limit_s=None, seed=1, command=None)
        name = "r%g" % rate if rate is not None else "c%d" % concurrency
        point = PointConfig(name, name, None, 1, workload)
        # distinct prompts: the server's first send of each is matched to the request that asked for it
        specs = [RequestSpec("hello there kenobi %d" % i, 4, tokens) for i in range(count)]
        with tempfile.TemporaryDirectory() as tmp:
            events_path = os.path.join(tmp, "events.ndjson")
            agent = BenchAgent(events_path)
            counts = PointCounts()
            runner = LoadRunner(agent, Endpoint("http://127.0.0.1:%d/v1" % port, "chat", "m"), point, 0, counts, None)
            usage_before = resource.getrusage(resource.RUSAGE_SELF)
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # load workers, once waited for
            cpu_before = time.process_time()
            wall_before = time.monotonic()
            stop = runner.run(specs, warmup=False, first_index=0)
            wall = time.monotonic() - wall_before
            usage_after = resource.getrusage(resource.RUSAGE_SELF)
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the server is not waited for yet
            workers_cpu = (children_after.ru_utime - children_before.ru_utime
                           + children_after.ru_stime - children_before.ru_stime)
            cpu = time.process_time() - cpu_before + workers_cpu
            with open(events_path) as f:
                requests = [e for e in map(json.loads, f) if e["type"] == "request"]
            schedule = rate_schedule(runner, requests) if rate is not None else None
        truth = get_json(port, "/stats")
    finally:
        process.terminate()
        process.wait(timeout=10)
    ok = [r for r in requests if r["ok"]]
    itls = [gap for r in ok for gap in r["itl_s"]]
    ttfts = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    # true TTFT: from the client handing the request to its socket (t_start, on the agent's clock: util.now() is
    # CLOCK_MONOTONIC shifted) to the server handing the first token to its own (CLOCK_MONOTONIC, same machine)
    shift = util._MONO_AT_START - util._WALL_AT_START
    first_sends = truth["first_sends"]
    true_ttfts = [first_sends[specs[r["i"]].prompt] - (r["t_start"] + shift) for r in ok
                  if r["ttft_s"] is not None and specs[r["i"]].prompt in first_sends]
    chunks = sum(len(r["itl_s"]) + 1 for r in ok if r["ttft_s"] is not None)
    first = min(r["t_start"] + r["ttft_s"] for r in ok)
    last = max(r["t_start"] + r["ttft_s"] + sum(r["itl_s"]) for r in ok)
    measured_itl = {"p50": ms(quantile(itls, 0.5)), "p99": ms(quantile(itls, 0.99))}
    true_itl = truth["gap_ms"]
    result = {
        "concurrency": concurrency, "schedule": "spread" if spread else "bursts", "tokens_per_request": tokens, "requests": len(requests), "ok": len(ok),
        "stop": stop, "wall_s": round(wall, 3),
        "gap_ms": round(gap_ms, 3), "ttft_ms_nominal": "%g + U(0, %g)" % (TTFT_MS, round(gap_ms, 3)),
        "offered_chunks_per_s": round(rate * tokens if rate is not None else concurrency / (gap_ms / 1000), 1),
        "server_sent_chunks_per_s": truth["chunks_per_s"],
        "measured_chunks_per_s": round(chunks / (last - first), 1) if last > first else None,
        "itl_ms": {"measured": measured_itl, "true": {"p50": true_itl["p50"], "p99": true_itl["p99"]},
                   "error_pct": {q: (round(100 * (measured_itl[q] - true_itl[q]) / true_itl[q], 3)
                                     if true_itl[q] else None) for q in ("p50", "p99")}},
        "ttft_ms": {"measured": {"p50": ms(quantile(ttfts, 0.5)), "p99": ms(quantile(ttfts, 0.99))},
                    "true": {"p50": ms(quantile(true_ttfts, 0.5)), "p99": ms(quantile(true_ttfts, 0.99))},
                    # the server's own, from reading the request: without the time the request waited for it
                    "server": {"p50": truth["ttft_ms"]["p50"], "p99": truth["ttft_ms"]["p99"]}},
        "server_late_ms": truth["late_ms"],
        "server_inflight_max": truth["inflight_max"],
        "server_connections": truth["connections"],  # keep-alive: about one per stream, not one per request
        "server_cpu_us_per_chunk": round(truth["cpu_s"] / truth["chunks"] * 1e6, 2) if truth["chunks"] else None,
        "inflight_max": counts.inflight_max, "inflight_mean": counts.inflight_mean,
        "client_lag_ms": counts.client_lag_ms, "client_behind": counts.client_behind,
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # the machine's, before and after
        "cpu_s": round(cpu, 3),
        "cpu_workers_s": round(workers_cpu, 3),  # of cpu_s: the load worker processes' (the rest: the agent's)
        "cpu_us_per_chunk": round(cpu / chunks * 1e6, 2) if chunks else None,
        "cpu_core_pct": round(100 * cpu / wall, 1) if wall > 0 else None,  # of one core, over the point's wall time
        "cpu_user_s": round(usage_after.ru_utime - usage_before.ru_utime + children_after.ru_utime
                            - children_before.ru_utime, 3),
        "cpu_sys_s": round(usage_after.ru_stime - usage_before.ru_stime + children_after.ru_stime
                           - children_before.ru_stime, 3),
        "load_processes": counts.load_processes, "arrival_stamps": counts.arrival_stamps,
        "arrivals_shared_read": counts.end_fields().get("arrivals_shared_read"),
        "first_tokens_shared_read": counts.end_fields().get("first_tokens_shared_read"),
    }
    if rate is not None:
        result.update(schedule or {})
        result["request_rate"] = rate
        result["request_rate_achieved"] = counts.request_rate_achieved
        result["concurrency"] = None
        result["schedule"] = "poisson"
    ttft = result["ttft_ms"]
    result["ttft_ms"]["error_ms"] = {q: (round(ttft["measured"][q] - ttft["true"][q], 3)
                                         if ttft["measured"][q] is not None and ttft["true"][q] is not None else None)
                                     for q in ("p50", "p99")}
    return result


def rate_schedule(runner: LoadRunner, requests: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """How late each request went out against its place in the point's one Poisson schedule (the same
    seeded offsets the runner sent by, from the origin it started them at): request i is arrival i."""
    span = runner.rate_span()
    if span is None:
        return None
    offsets = runner.arrival_offsets(len(requests))
    wall, mono = util.clock_anchor()
    on_events_clock = wall + (span[0] - mono)
    late = sorted(r["t_start"] - (on_events_clock + offsets[r["i"]]) for r in requests)
    return {"send_late_ms": {"p50": ms(quantile(late, 0.5)), "p99": ms(quantile(late, 0.99)), "max": ms(late[-1]),
                             "min": ms(late[0])},
            # the rate this seed's arrivals make, as the runner computes it from the sends (n over origin to last)
            "request_rate_scheduled": round(len(offsets) / offsets[-1], 3) if offsets and offsets[-1] > 0 else None}


def machine_speed() -> Dict[str, float]:
    """How fast this machine runs what the client does, for comparing figures across machines: a pure
    Python loop (sum(range(10**6)), best of 5) and one 200-byte TCP loopback send + read (best of 5 x 20,000)."""
    import socket
    loop_ms = min(_timed(lambda: sum(range(10 ** 6))) for _ in range(5)) * 1000
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    for sock in (client, peer):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray(65536)
    message = b"x" * 200

    def round_trips() -> None:
        for _ in range(20000):
            peer.send(message)
            client.recv_into(buffer)

    tcp_us = min(_timed(round_trips) for _ in range(5)) / 20000 * 1e6
    for sock in (client, peer, server):
        sock.close()
    return {"python_loop_ms": round(loop_ms, 2), "tcp_send_read_us": round(tcp_us, 2)}


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def verdict(r: Dict[str, Any]) -> Dict[str, bool]:
    errors = r["itl_ms"]["error_pct"]
    ttft = r["ttft_ms"]["error_ms"]
    return {"itl_within_2pct": all(e is not None and abs(e) <= 2.0 for e in errors.values()),
            "ttft_within_1ms": all(e is not None and abs(e) <= 1.0 for e in ttft.values()),
            # a ceiling's target: at a trickle the loop's fixed cost (its timers) is most of each chunk's share
            "cpu_within_25us": (None if r["offered_chunks_per_s"] < CPU_TARGET_FROM_CHUNKS_PER_S else
                                r["cpu_us_per_chunk"] is not None and r["cpu_us_per_chunk"] <= 25.0),
            **({"concurrency_reached": r["inflight_max"] == r["concurrency"]} if r.get("request_rate") is None else {
                # the seeded schedule's own rate (n Poisson arrivals stray ~1/sqrt(n) from the one asked for)
                "rate_achieved": r["request_rate_achieved"] is not None and bool(r.get("request_rate_scheduled"))
                and abs(r["request_rate_achieved"] / r["request_rate_scheduled"] - 1) <= 0.01})}


def label(r: Dict[str, Any]) -> str:
    if r.get("request_rate") is not None:
        return "rate %g/s" % r["request_rate"]
    return "%d%s" % (r["concurrency"], "" if r.get("schedule", "spread") == "spread" else " (bursts)")


def per_chunk(r: Dict[str, Any], key: str) -> Optional[float]:
    """µs of `key` (a CPU time in s) per chunk, from the scenario's own CPU total and µs/chunk."""
    if not r["cpu_us_per_chunk"] or not r["cpu_s"]:
        return None
    chunks = r["cpu_s"] / r["cpu_us_per_chunk"] * 1e6
    return round(r[key] / chunks * 1e6, 1)


def markdown(report: Dict[str, Any]) -> str:
    lines = ["# Load generator ceiling", "",
             "`python3 bench/loadgen.py` (%s, %d CPUs, Python %s, %s; this machine's speed: `sum(range(10**6))` in "
             "%s ms, a 200-byte TCP loopback send + read in %s µs). The agent's LoadRunner against "
             "bench/loadgen_server.py in its own process; two waves of requests per scenario; one token per "
             "chunk; per-stream gap max(10 ms, concurrency / %s chunks/s); TTFT 20 ms + a phase uniform in "
             "[0, gap). True = the server's own send times; true TTFT from the request event's t_start (the client "
             "handing the request to its socket) to the server's first send; in brackets the server's own TTFT, "
             "from reading the request." % (report["when"], report["cpus"], report["python"],
                                                               report["machine"], report["speed"]["python_loop_ms"],
                                                               report["speed"]["tcp_send_read_us"],
                                                               "{:,.0f}".format(report.get("chunks_per_s", TARGET_CHUNKS_PER_S))),
             "",
             "| streams | load processes · stamps | in flight max / mean | offered chunks/s | measured chunks/s | ITL p50 measured / true (ms) "
             "| ITL p99 measured / true (ms) | TTFT p50 measured / true (server) (ms) "
             "| TTFT p99 measured / true (server) (ms) "
             "| client CPU µs/chunk (user + sys) | loop lag p99 / max (ms) | client_behind | tokens · first tokens in a shared read "
             "| machine load avg | targets met |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in report["scenarios"]:
        itl, ttft, lag = r["itl_ms"], r["ttft_ms"], r["client_lag_ms"] or {}
        missed = [name for name, good in r["targets"].items() if good is False]
        unjudged = [name for name, good in r["targets"].items() if good is None]
        row = ("| %s | %s · %s | %s / %s | %s | %s | %s / %s | %s / %s | %s / %s (%s) | %s / %s (%s) | %s (%s + %s) "
               "| %s / %s | %s | %s | %s | %s |")
        lines.append(row % (
            label(r),
            r["load_processes"], r["arrival_stamps"], r["inflight_max"], r["inflight_mean"], r["offered_chunks_per_s"],
            r["measured_chunks_per_s"], itl["measured"]["p50"], itl["true"]["p50"], itl["measured"]["p99"],
            itl["true"]["p99"], ttft["measured"]["p50"], ttft["true"]["p50"], ttft["server"]["p50"],
            ttft["measured"]["p99"], ttft["true"]["p99"], ttft["server"]["p99"], r["cpu_us_per_chunk"],
            per_chunk(r, "cpu_user_s"), per_chunk(r, "cpu_sys_s"),
            lag.get("p99"), lag.get("max"), r["client_behind"],
            ("%.2f%%" % (100 * r["arrivals_shared_read"]) if r["arrivals_shared_read"] is not None else "—")
            + (" · %.1f%%" % (100 * r["first_tokens_shared_read"]) if r.get("first_tokens_shared_read") is not None
               else ""),
            " → ".join(str(v) for v in r["load_avg_1m"]),
            ("all" if not missed else "missed: " + ", ".join(missed))
            + (" (%s not judged below %d chunks/s; %s%% of a core)" % (", ".join(unjudged), CPU_TARGET_FROM_CHUNKS_PER_S,
                                                                     r["cpu_core_pct"]) if unjudged else "")))
    for r in report["scenarios"]:
        late = r.get("send_late_ms")
        if r.get("request_rate") is not None and late:
            lines += ["", "%s: %s requests of %d tokens, Poisson; achieved %s/s, the seeded schedule's own rate %s/s; "
                          "each request sent after its scheduled time by p50 %s, p99 %s, max %s ms (a connection's "
                          "first request waits for its handshake); %s in flight at most."
                      % (label(r), r["requests"], r["tokens_per_request"], r["request_rate_achieved"],
                         r["request_rate_scheduled"], late["p50"], late["p99"], late["max"], r["inflight_max"])]
    lines += ["", "Targets: ITL p50 and p99 within 2% of the truth, TTFT within 1 ms, at most 25 µs of client "
                  "CPU per chunk (every load process's, the workers' included), the configured concurrency in "
                  "flight (at a request rate: the achieved rate within 1% of the seeded schedule's own). Arrivals are stamped by the kernel (`kernel`: SO_TIMESTAMPNS, the time the bytes "
                  "reached the socket), so a busy client shifts no stamp; what a late client still spoils is a "
                  "read that took two tokens of one stream at once (the shared-read column: their gap is the "
                  "read's, 0; a first token read with the second makes a TTFT late by a gap), so with kernel "
                  "stamps a point is flagged `client_behind` when its loop stalled past 5 ms and more than 0.5% "
                  "of its tokens, or 1% of its first tokens, came in a shared read. A `(bursts)` scenario's stand-in sends without phases: every stream that "
                  "started together sends in the same instant, as an engine's decode step answers every running "
                  "request at once, so hundreds of reads arrive together and the last is read milliseconds after "
                  "the first. The server and the client share this machine's CPUs: where the server "
                  "cannot keep its own schedule the truth (its real send times) moves off the nominal gap, and "
                  "the measurement is checked against the truth. The CPU per chunk depends on the machine (see "
                  "its speed above); at one stream it is the loop's fixed cost (a 10 ms lag timer, a 50 ms "
                  "watcher) spread over 100 chunks/s. The client keeps each stream's connection alive "
                  "(`server_connections` in the JSON: one per stream), so only the first wave connects.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="about how long each scenario runs")
    parser.add_argument("--concurrency", default="1,64,256,512,1024,2048")
    parser.add_argument("--bursts", default="1024",
                        help="streams for scenarios whose tokens come in bursts, every stream that started together "
                             "sending at the same instant as an engine's decode step does ('' for none)")
    parser.add_argument("--rates", default="200",
                        help="request-rate scenarios (requests/s, Poisson; each request chunks-per-s / rate tokens "
                             "long, '' for none)")
    parser.add_argument("--chunks-per-s", type=float, default=TARGET_CHUNKS_PER_S,
                        help="the offered rate where the streams allow it (per-stream gap at least 10 ms)")
    parser.add_argument("--out", default=HERE)
    args = parser.parse_args()
    raise_open_file_limit()
    scenarios = []
    runs = ([(int(c), True, None) for c in args.concurrency.split(",") if c]
            + [(int(c), False, None) for c in args.bursts.split(",") if c]
            + [(0, True, float(rate)) for rate in args.rates.split(",") if rate])
    for concurrency, spread, rate in runs:
        r = scenario(concurrency, args.seconds, spread, args.chunks_per_s, rate)
        r["targets"] = verdict(r)
        scenarios.append(r)
        print("loadgen: %s: %8s chunks/s measured of %8s offered; ITL p50 %s/%s ms, p99 %s/%s ms; "
              "TTFT p50 %s/%s ms; %s µs CPU/chunk; lag p99 %s ms" % (
                  label(r), r["measured_chunks_per_s"], r["offered_chunks_per_s"],
                  r["itl_ms"]["measured"]["p50"], r["itl_ms"]["true"]["p50"], r["itl_ms"]["measured"]["p99"],
                  r["itl_ms"]["true"]["p99"], r["ttft_ms"]["measured"]["p50"], r["ttft_ms"]["true"]["p50"],
                  r["cpu_us_per_chunk"], (r["client_lag_ms"] or {}).get("p99")), flush=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(), "speed": machine_speed(),
              "python": sys.version.split()[0], "machine": os.uname().machine, "seconds_per_scenario": args.seconds,
              "chunks_per_s": args.chunks_per_s,
              "scenarios": scenarios}
    with open(os.path.join(args.out, "loadgen-results.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "loadgen-results.md"), "w") as f:
        f.write(markdown(report))


if __name__ == "__main__":
    main()
