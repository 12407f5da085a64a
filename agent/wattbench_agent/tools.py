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


class ToolSpec(NamedTuple):
    executable: str
    install: str  # what a user runs to get the executable
    # (endpoint, output dir) -> the arguments Wattbench sets, before the job's tool_args
    arguments: Callable[[Any, str], List[str]]
    # (output dir, agent-clock offset from CLOCK_MONOTONIC, process start, process end) -> request records
    read: Callable[[str, float, float, float], Tuple[List[Dict[str, Any]], List[str]]]


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


def _guidellm_arguments(endpoint: Any, out_dir: str) -> List[str]:
    return ["benchmark", "--target", server_root(endpoint.base_url), "--model", endpoint.model,
            "--output-path", os.path.join(out_dir, "benchmarks.json")]


def _aiperf_arguments(endpoint: Any, out_dir: str) -> List[str]:
    return ["profile", "--url", server_root(endpoint.base_url), "--model", endpoint.model,
            "--endpoint-type", "chat" if endpoint.api == "chat" else "completions", "--streaming",
            "--artifact-dir", out_dir]


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _read_vllm(out_dir: str, mono_offset: float, t0: float, t1: float) -> Tuple[List[Dict[str, Any]], List[str]]:
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
        mapped = [s + mono_offset for s in starts] if all(_number(s) is not None for s in starts) else None
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


def _read_aiperf(out_dir: str, mono_offset: float, t0: float, t1: float) -> Tuple[List[Dict[str, Any]], List[str]]:
    """AIPerf `profile_export.jsonl`: one record per request, wall-clock nanosecond stamps, metrics in ms."""
    paths = glob.glob(os.path.join(out_dir, "**", "profile_export.jsonl"), recursive=True)
    if not paths:
        raise ToolOutputError("aiperf wrote no profile_export.jsonl under %s" % out_dir)
    wall_offset = now() - time.time()  # the agent's clock runs from its start, beside the wall clock
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

            start = meta["request_start_ns"] / 1e9 + wall_offset
            end = meta["request_end_ns"] / 1e9 + wall_offset
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


def _read_guidellm(out_dir: str, mono_offset: float, t0: float, t1: float) -> Tuple[List[Dict[str, Any]], List[str]]:
    raise ToolOutputError("reading GuideLLM's per-request records is not supported yet; its output is kept in %s"
                          % out_dir)


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
    mono_offset = now() - time.monotonic()
    t0 = now()
    status = runner._run_command_point(point, repeat, counts, command=command)
    t1 = now()
    try:
        records, notes = spec.read(out_dir, mono_offset, t0, t1)
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
