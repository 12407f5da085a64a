"""`workload.kind: tool`: another benchmark tool (vllm bench serve, GuideLLM, AIPerf) drives the load while the
agent measures power; afterwards the tool's own per-request records become `request` events on the agent's
clock, and its output files stay in the run directory (`tool-output/POINT-rREPEAT/`)."""

import glob
import json
import os
import shlex
import shutil
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .job import PointConfig
from .util import now


class ToolOutputError(ValueError):
    """The tool's output is missing or not in the format it documents."""


class ClockOffsets(NamedTuple):
    """What to add to a tool's timestamps to put them on the agent's clock, taken when the tool starts."""
    monotonic: float  # for time.monotonic() / time.perf_counter() stamps (CLOCK_MONOTONIC on Linux)
    wall: float  # for time.time() stamps


def clock_offsets() -> ClockOffsets:
    return ClockOffsets(monotonic=now() - time.monotonic(), wall=now() - time.time())


Records = Tuple[List[Dict[str, Any]], List[str]]  # request records and notes for the user


class ToolSpec(NamedTuple):
    executable: str
    install: str  # what a user runs to get the executable
    # (endpoint, output dir) -> the arguments Wattbench sets, before the job's tool_args
    arguments: Callable[[Any, str], List[str]]
    # (output dir, clock offsets at tool start, process start, process end on the agent's clock) -> records
    read: Callable[[str, ClockOffsets, float, float], Records]


def server_root(base_url: str) -> str:
    """vLLM and AIPerf append the route (`/v1/...`) themselves: give them the server's root."""
    url = base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def _vllm_arguments(endpoint: Any, out_dir: str) -> List[str]:
    chat = endpoint.api == "chat"
    return ["bench", "serve", "--backend", "openai-chat" if chat else "vllm",
            "--endpoint", "/v1/chat/completions" if chat else "/v1/completions",
            "--base-url", server_root(endpoint.base_url), "--model", endpoint.model,
            "--save-result", "--save-detailed", "--result-dir", out_dir]


# GuideLLM keeps every request in benchmarks.json only when told to: 0.4 and 0.5 keep a random 10 per status
# by default (0.6 keeps all). A count no run reaches keeps all in each; the reader checks the file anyway.
GUIDELLM_KEEP_ALL = 2 ** 31 - 1


def _guidellm_arguments(endpoint: Any, out_dir: str) -> List[str]:
    """The `guidellm benchmark run` CLI of GuideLLM 0.4 to 0.6 (vllm-project/guidellm src/guidellm/__main__.py at
    v0.6.1 = e82b62ae3403568d3693a4a49b0c63a82a55df84, the same options at v0.4.0 = f6175cdd8a88):
    `--output-dir` with `--outputs json` writes DIR/benchmarks.json (GenerativeBenchmarksReport.DEFAULT_FILE);
    the legacy `--output-path` is only resolved into those two. The openai_http backend strips a trailing /v1
    from --target and adds the route the --request-type alias names. GuideLLM 0.7 replaced this CLI with
    `guidellm run --backend kind=...`: it is not driven here."""
    chat = endpoint.api == "chat"
    return ["benchmark", "run", "--target", server_root(endpoint.base_url), "--model", endpoint.model,
            "--request-type", "chat_completions" if chat else "text_completions",
            "--output-dir", out_dir, "--outputs", "json", "--sample-requests", str(GUIDELLM_KEEP_ALL)]


def _aiperf_arguments(endpoint: Any, out_dir: str) -> List[str]:
    """`aiperf profile` (ai-dynamo/aiperf aiperf/common/config/endpoint_config.py and output_config.py at
    db4f6397d11ee2d4cfbb41f70b2327315163dcf0): `--url` is the server's root (the endpoint type's path,
    /v1/chat/completions or /v1/completions, is appended); an explicit `--artifact-dir` is used as given (only
    the default gets a model-endpoint-stimulus subfolder), and profile_export.jsonl is written in it."""
    return ["profile", "--url", server_root(endpoint.base_url), "--model", endpoint.model,
            "--endpoint-type", "chat" if endpoint.api == "chat" else "completions", "--streaming",
            "--artifact-dir", out_dir]


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _read_vllm(out_dir: str, offsets: ClockOffsets, t0: float, t1: float) -> Records:
    """`vllm bench serve --save-detailed` result JSON: parallel per-request arrays. `start_times` are
    `time.perf_counter()` stamps, CLOCK_MONOTONIC on Linux like the agent's own clock, so they map exactly;
    an older vLLM without them gets approximate times (said in a note)."""
    files = sorted(glob.glob(os.path.join(out_dir, "*.json")))
    if not files:
        raise ToolOutputError("vllm bench serve wrote no result JSON in %s (it needs --save-result)" % out_dir)
    notes = []  # type: List[str]
    records = []  # type: List[Dict[str, Any]]
    for path in files:
        with open(path) as f:
            data = json.load(f)
        ttfts = data.get("ttfts")
        if not isinstance(ttfts, list):
            raise ToolOutputError("%s has no per-request `ttfts` (run with --save-detailed)" % os.path.basename(path))
        n = len(ttfts)

        def column(name: str, default: Any = None) -> List[Any]:
            values = data.get(name)
            return values if isinstance(values, list) and len(values) == n else [default] * n

        itls, inputs, outputs = column("itls", []), column("input_lens"), column("output_lens")
        errors, latencies, starts = column("errors", ""), column("latencies"), column("start_times")
        mapped = [s + offsets.monotonic for s in starts] if all(_number(s) is not None for s in starts) else None
        if mapped is not None and n and not (t0 - 1 <= min(mapped) and max(mapped) <= t1 + 1):
            mapped = None  # not this host's monotonic clock
        if mapped is None and n:
            duration = _number(data.get("duration")) or 0.0
            notes.append("%s has no usable per-request start_times (an older vLLM?): requests are placed at the "
                         "benchmark's start, so the idle split is approximate" % os.path.basename(path))
        for i in range(n):
            itl = [float(x) for x in (itls[i] or []) if _number(x) is not None]
            ttft = _number(ttfts[i])
            latency = _number(latencies[i])
            if latency is None:
                latency = (ttft or 0.0) + sum(itl)
            error = errors[i] if isinstance(errors[i], str) else ""
            ok = not error  # vLLM records a failure's message; a success has ""
            start = mapped[i] if mapped is not None else max(t0, t1 - duration)
            record = {"t_start": start, "t_end": start + latency, "latency_s": latency,
                      "ttft_s": ttft if ok else None, "itl_s": itl, "ok": bool(ok),
                      "prompt_tokens": inputs[i], "output_tokens": outputs[i] if ok else 0}
            if error:
                record["error"] = error[:500]
            records.append(record)
    return records, notes


def _read_aiperf(out_dir: str, offsets: ClockOffsets, t0: float, t1: float) -> Records:
    """AIPerf `profile_export.jsonl` (MetricRecordInfo in aiperf/common/models/record_models.py at db4f6397):
    one record per request, `request_start_ns`/`request_end_ns` from time.time_ns(), metrics as
    {value, unit} in display units (ms for times, tokens for lengths), `error` an ErrorDetails or null."""
    paths = sorted(glob.glob(os.path.join(out_dir, "**", "profile_export.jsonl"), recursive=True))
    if not paths:
        raise ToolOutputError("aiperf wrote no profile_export.jsonl under %s" % out_dir)
    records = []  # type: List[Dict[str, Any]]
    with open(paths[0]) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            meta, metrics = row.get("metadata") or {}, row.get("metrics") or {}
            if meta.get("benchmark_phase", "profiling") != "profiling":
                continue  # warm-up requests are not measured

            def metric(name: str) -> Any:
                entry = metrics.get(name)
                return entry.get("value") if isinstance(entry, dict) else None

            start = meta["request_start_ns"] / 1e9 + offsets.wall
            end = meta["request_end_ns"] / 1e9 + offsets.wall
            ttft = metric("time_to_first_token")
            chunks = metric("inter_chunk_latency")
            error = row.get("error")
            record = {"t_start": start, "t_end": end, "latency_s": end - start,
                      "ttft_s": ttft / 1000.0 if _number(ttft) is not None else None,
                      "itl_s": [x / 1000.0 for x in chunks] if isinstance(chunks, list) else [],
                      "ok": not error and not meta.get("was_cancelled"),
                      "prompt_tokens": metric("input_sequence_length"),
                      "output_tokens": metric("output_sequence_length") or 0}
            if error:
                record["error"] = (error.get("message") if isinstance(error, dict) else str(error)) or "error"
            records.append(record)
    return records, []


GUIDELLM_STATUSES = ("successful", "incomplete", "errored")


def _first_number(*values: Any) -> Optional[float]:
    for value in values:
        if _number(value) is not None:
            return float(value)
    return None


def _guidellm_record(row: Dict[str, Any], status: str, wall: float) -> Optional[Dict[str, Any]]:
    """One GenerativeRequestStats as model_dump writes it: its computed fields (`request_start_time`,
    `output_tokens`, `time_to_first_token_ms`, ...) beside `info.timings`, time.time() stamps taken by the
    openai_http backend. None when it has no times at all (a request that never reached the backend)."""
    info = row.get("info") if isinstance(row.get("info"), dict) else {}
    timings = info.get("timings") if isinstance(info.get("timings"), dict) else {}
    start = _first_number(row.get("request_start_time"), timings.get("request_start"), timings.get("resolve_start"))
    end = _first_number(row.get("request_end_time"), timings.get("request_end"), timings.get("resolve_end"))
    if start is None or end is None:
        return None
    ok = status == "successful"
    usage_in = row.get("input_metrics") if isinstance(row.get("input_metrics"), dict) else {}
    usage_out = row.get("output_metrics") if isinstance(row.get("output_metrics"), dict) else {}
    prompt = _first_number(row.get("prompt_tokens"), usage_in.get("text_tokens"))
    output = _first_number(row.get("output_tokens"), usage_out.get("text_tokens"), timings.get("token_iterations"))
    first, last = timings.get("first_token_iteration"), timings.get("last_token_iteration")
    ttft_ms = _first_number(row.get("time_to_first_token_ms"),
                            1000 * (first - start) if _number(first) is not None else None)
    itl_ms = _first_number(row.get("inter_token_latency_ms"))
    tokens = int(output) if ok and output is not None else 0
    # GuideLLM keeps only the first and last token times, not each gap: its ITL is their mean, which stands for
    # each of the request's gaps here (the request's mean, and the run's token-weighted mean, stay exact)
    itl = [itl_ms / 1000.0] * (tokens - 1) if ok and itl_ms is not None and tokens > 1 else []
    record = {"t_start": start + wall, "t_end": end + wall, "latency_s": end - start,
              "ttft_s": ttft_ms / 1000.0 if ok and ttft_ms is not None else None, "itl_s": itl, "ok": ok,
              "prompt_tokens": int(prompt) if prompt is not None else None, "output_tokens": tokens}
    if not ok:
        error = info.get("error") if isinstance(info.get("error"), str) else ""
        record["error"] = (error or ("incomplete: GuideLLM stopped the request before it finished"
                                     if status == "incomplete" else "errored"))[:500]
    return record


def _read_guidellm(out_dir: str, offsets: ClockOffsets, t0: float, t1: float) -> Records:
    """GuideLLM's benchmarks.json (GenerativeBenchmarksReport, 0.4 to 0.7: vllm-project/guidellm
    src/guidellm/benchmark/schemas/generative/benchmark.py at v0.6.1 e82b62ae, and src/guidellm/schemas/
    request_stats.py and info.py): each benchmark's `requests` holds `successful`/`incomplete`/`errored` lists of
    request stats, all of them unless sampled; `metrics.request_totals` counts them before sampling."""
    path = os.path.join(out_dir, "benchmarks.json")
    if not os.path.exists(path):
        raise ToolOutputError("guidellm wrote no benchmarks.json in %s (it needs --outputs json)" % out_dir)
    with open(path) as f:
        data = json.load(f)
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list) or not benchmarks:
        raise ToolOutputError("benchmarks.json holds no `benchmarks` list")
    records = []  # type: List[Dict[str, Any]]
    untimed = 0
    for index, bench in enumerate(benchmarks):
        requests = bench.get("requests") if isinstance(bench, dict) else None
        if not isinstance(requests, dict):
            raise ToolOutputError("benchmark %d has no per-request `requests` (a GuideLLM before 0.4?)" % index)
        totals = (bench.get("metrics") or {}).get("request_totals") or {}
        for status in GUIDELLM_STATUSES:
            rows = requests.get(status) or []
            expected = totals.get(status)
            if _number(expected) is not None and len(rows) < expected:
                raise ToolOutputError(
                    "benchmark %d keeps %d of its %d %s requests (GuideLLM sampled them): J/token would be wrong; "
                    "leave --sample-requests to Wattbench" % (index, len(rows), expected, status))
            for row in rows:
                record = _guidellm_record(row, status, offsets.wall) if isinstance(row, dict) else None
                if record is None:
                    untimed += 1
                else:
                    records.append(record)
    notes = ["GuideLLM records each request's first and last token times, not each gap: a request's ITL values "
             "are its mean gap, so ITL percentiles are over requests' means"]
    if untimed:
        notes.append("%d GuideLLM requests have no start or end time and are left out" % untimed)
    return records, notes


TOOLS = {
    "vllm-bench": ToolSpec("vllm", "pip install vllm", _vllm_arguments, _read_vllm),
    "guidellm": ToolSpec("guidellm", "pip install guidellm", _guidellm_arguments, _read_guidellm),
    "aiperf": ToolSpec("aiperf", "pip install aiperf", _aiperf_arguments, _read_aiperf),
}  # type: Dict[str, ToolSpec]


def missing_tool_message(tool: str) -> str:
    spec = TOOLS[tool]
    return ("workload.tool %s needs the `%s` executable, which is not on PATH on this host; install it with `%s` "
            "(in the environment the agent runs in)" % (tool, spec.executable, spec.install))


def tool_command(tool: str, executable: str, endpoint: Any, out_dir: str, tool_args: List[str]) -> str:
    argv = [executable] + TOOLS[tool].arguments(endpoint, out_dir) + list(tool_args)
    return " ".join(shlex.quote(a) for a in argv)


def run_tool_point(runner: Any, point: PointConfig, repeat: int, counts: Any) -> str:
    """Run the point's tool as a command workload, then turn its per-request records into `request` events."""
    workload = point.workload
    tool = workload.tool or ""
    spec = TOOLS[tool]
    executable = shutil.which(spec.executable)
    if executable is None:
        runner.events.emit("error", where="workload", fatal=False, point=point.id, message=missing_tool_message(tool))
        return "error"
    out_dir = os.path.join(runner.run_dir, "tool-output", "%s-r%d" % (point.id, repeat))
    os.makedirs(out_dir, exist_ok=True)
    command = tool_command(tool, executable, runner.endpoint, out_dir, workload.tool_args)
    runner.events.emit("log", level="info", source="agent", msg="workload: %s" % command)
    offsets = clock_offsets()
    t0 = now()
    status = runner._run_command_point(point, repeat, counts, command=command)
    t1 = now()
    try:
        records, notes = spec.read(out_dir, offsets, t0, t1)
    except (OSError, ValueError, KeyError, TypeError) as e:
        runner.events.emit("error", where="workload", fatal=False, point=point.id,
                           message="could not read %s's per-request output: %s" % (spec.executable, e))
        return "error"
    for note in notes:
        runner.events.emit("log", level="warn", source="agent", msg=note)
    records.sort(key=lambda r: r["t_start"])
    for index, record in enumerate(records):
        event = dict(record, point=point.id, repeat=repeat, i=index, warmup=False)
        runner.events.emit("request", **event)
        counts.requests += 1
        if not record["ok"]:
            counts.errors += 1
    return status
