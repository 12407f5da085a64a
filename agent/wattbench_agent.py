#!/usr/bin/env python3
"""Wattbench agent: measures what LLM inference costs on the GPUs of this host.

One file, Python 3.8+ standard library only. The extension uploads it to the GPU host and starts it
detached. It samples GPU power and energy, optionally launches the inference server, generates load
against it, sets power caps per sweep point (and always restores them), and writes every event as one
JSON line to DIR/events.ndjson and stdout. The contract is docs/protocol.md of the Wattbench repository.

Subcommands:
  run          run a job file (--job JOB.json --run-dir DIR [--detach])
  restore-caps restore power limits left changed by an agent that died hard
  probe        print one `hello` event describing the GPUs found, then exit
  sim-server   a simulated OpenAI-compatible LLM server driving simulated GPUs (for demos and tests)
  sim-truth    ground-truth energy of the simulated GPUs over a time window (for tests)
  list-runs    one JSON line per run directory under --root
"""

import argparse
import bisect
import collections
import contextlib
import csv
import ctypes
import fcntl
import http.client
import http.server
import io
import json
import math
import os
import platform
import queue
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

AGENT_VERSION = "0.1.0"
PROTOCOL_VERSION = 1
AGENT_FILE = os.path.abspath(__file__)

SERVER_STOP_GRACE_S = 10.0  # TERM, then KILL after this long (docs/protocol.md)
SERVER_LOG_TAIL_LINES = 20  # lines of server.log quoted in an error's `detail`
REQUEST_CONNECT_TIMEOUT_S = 10.0
REQUEST_READ_TIMEOUT_S = 300.0  # longest silence tolerated inside one streamed response
PROBE_TIMEOUT_S = 2.0


# ----------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------


def wattbench_home() -> str:
    return os.environ.get("WATTBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "wattbench")


def default_sim_dir() -> str:
    return os.environ.get("WATTBENCH_SIM_DIR") or os.path.join(wattbench_home(), "sim")


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: str, obj: Any, durable: bool = False) -> None:
    """Replace `path` in one step, so readers never see half a file; `durable` also survives power loss."""
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def read_json_file(path: str) -> Any:
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _proc_stat_fields(pid: int) -> Optional[List[str]]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ..., starttime at 19, ...]."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def process_start_ticks(pid: int) -> Optional[int]:
    fields = _proc_stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def pid_alive(pid: Optional[int]) -> bool:
    """True if the process exists and is not a zombie (an unreaped dead process)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat_fields(pid)
    return fields is None or fields[0] not in ("Z", "X")


def same_process(pid: Optional[int], start_ticks: Optional[int]) -> bool:
    """True if `pid` is alive and is still the process that had `start_ticks` (pids get reused)."""
    if not pid_alive(pid):
        return False
    if start_ticks is None:
        return True
    return process_start_ticks(pid) == start_ticks


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process is left in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _proc_stat_fields(int(name))
            if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


def tail_lines(path: str, count: int) -> List[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:]


def free_loopback_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        return "was killed by %s" % name
    return "exited with code %d" % code


class DiagLog:
    """The agent's own diagnostics (DIR/agent.log): internals and tracebacks that are not events."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path

    def write(self, message: str) -> None:
        if not self.path:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("%s [%d] %s\n" % (stamp, os.getpid(), message))
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------------------------------


class EventWriter:
    """Appends one JSON object per line to events.ndjson (flushed per line) and mirrors it to stdout.

    `seq` counts up without gaps; it continues after the last event when the file already holds events,
    so a second agent in the same run directory never repeats a number."""

    def __init__(self, path: Optional[str], mirror_stdout: bool) -> None:
        self._lock = threading.Lock()
        self._mirror = mirror_stdout
        self._file = open(path, "ab") if path else None
        self._seq = self._next_seq(path) if path else 0

    @staticmethod
    def _next_seq(path: str) -> int:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                lines = f.read().splitlines()
        except OSError:
            return 0
        for line in reversed(lines):
            try:
                return int(json.loads(line)["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                continue
        return 0

    def emit(self, event_type: str, t: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        with self._lock:
            event = {"v": PROTOCOL_VERSION, "seq": self._seq, "t": time.time() if t is None else t,
                     "type": event_type}
            event.update(fields)
            try:
                line = json.dumps(event, separators=(",", ":"), allow_nan=False)
            except ValueError:
                line = json.dumps(json_safe(event), separators=(",", ":"))
            data = (line + "\n").encode("utf-8")
            if self._file is not None:
                self._file.write(data)
                self._file.flush()
            self._seq += 1
            if self._mirror:
                try:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
                except (OSError, ValueError):
                    self._mirror = False  # the reader went away (e.g. SSH dropped); the file keeps everything
            return event

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# ----------------------------------------------------------------------------------------------------
# Job file
# ----------------------------------------------------------------------------------------------------


class JobError(Exception):
    """The job file (or a file it names) is unusable; the message names the field."""


_MISSING = object()


def _describe_value(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Fields:
    """Typed access to one JSON object of the job file; errors name the field's full path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise JobError("%s: expected an object, got %s" % (where or "top level", _describe_value(data)))
        self.data = data
        self.where = where

    def path(self, key: str) -> str:
        return "%s.%s" % (self.where, key) if self.where else key

    def error(self, key: str, message: str) -> JobError:
        return JobError("%s: %s" % (self.path(key), message))

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        value = self.data.get(key)
        if value is not None:
            return value
        if default is _MISSING:
            raise self.error(key, "required field is missing")
        return default

    def number(self, key: str, default: Any = _MISSING, minimum: Optional[float] = None,
               above: Optional[float] = None, maximum: Optional[float] = None) -> Optional[float]:
        value = self.raw(key, default)
        if value is None or (value is default and key not in self.data):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, "expected a number, got %s" % _describe_value(value))
        if minimum is not None and value < minimum:
            raise self.error(key, "must be at least %g, got %g" % (minimum, value))
        if above is not None and value <= above:
            raise self.error(key, "must be greater than %g, got %g" % (above, value))
        if maximum is not None and value > maximum:
            raise self.error(key, "must be at most %g, got %g" % (maximum, value))
        return float(value)

    def integer(self, key: str, default: Any = _MISSING, minimum: Optional[int] = None) -> Optional[int]:
        value = self.raw(key, default)
        if value is None or (value is default and key not in self.data):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise self.error(key, "expected a whole number, got %s" % _describe_value(value))
        if minimum is not None and value < minimum:
            raise self.error(key, "must be at least %d, got %s" % (minimum, _describe_value(value)))
        return int(value)

    def string(self, key: str, default: Any = _MISSING, choices: Optional[Tuple[str, ...]] = None) -> Optional[str]:
        value = self.raw(key, default)
        if value is None or (value is default and key not in self.data):
            return value
        if not isinstance(value, str):
            raise self.error(key, "expected a string, got %s" % _describe_value(value))
        if choices is not None and value not in choices:
            raise self.error(key, "must be one of %s, got %s" % (", ".join(choices), _describe_value(value)))
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "expected true or false, got %s" % _describe_value(value))
        return value

    def section(self, key: str) -> Optional["_Fields"]:
        value = self.data.get(key)
        return None if value is None else _Fields(value, self.path(key))

    def array(self, key: str, default: Any = _MISSING) -> Optional[list]:
        value = self.raw(key, default)
        if value is None or (value is default and key not in self.data):
            return value
        if not isinstance(value, list):
            raise self.error(key, "expected a list, got %s" % _describe_value(value))
        return value


@dataclass
class LengthDist:
    dist: str  # fixed | normal | uniform | lognormal
    mean: float
    std: float = 0.0
    min: Optional[int] = None
    max: Optional[int] = None

    def draw(self, rng: random.Random) -> int:
        if self.dist == "normal":
            value = rng.gauss(self.mean, self.std)
        elif self.dist == "uniform":
            spread = math.sqrt(3.0) * self.std  # a uniform of this half-width has standard deviation `std`
            low = self.min if self.min is not None else self.mean - spread
            high = self.max if self.max is not None else self.mean + spread
            value = rng.uniform(low, high)
        elif self.dist == "lognormal" and self.std > 0:
            sigma2 = math.log(1.0 + (self.std / self.mean) ** 2)
            value = rng.lognormvariate(math.log(self.mean) - sigma2 / 2.0, math.sqrt(sigma2))
        else:
            value = self.mean
        if self.min is not None:
            value = max(value, self.min)
        if self.max is not None:
            value = min(value, self.max)
        return max(1, int(round(value)))


@dataclass
class DatasetConfig:
    kind: str  # synthetic | file
    input_tokens: Optional[LengthDist] = None
    output_tokens: Optional[LengthDist] = None
    path: Optional[str] = None
    format: str = "auto"
    prompts: List[str] = field(default_factory=list)  # file datasets, read when the job is loaded


@dataclass
class WorkloadConfig:
    kind: str  # http | command
    dataset: Optional[DatasetConfig]
    num_prompts: int
    max_tokens: int
    concurrency: Optional[int]
    request_rate: Optional[float]
    warmup_requests: int
    temperature: float
    ignore_eos: bool
    time_limit_s: Optional[float]
    seed: int
    command: Optional[str]


@dataclass
class PointConfig:
    id: str
    label: str
    power_cap_w: Optional[float]
    repeats: int
    workload: WorkloadConfig


@dataclass
class ServerConfig:
    sim: bool
    command: Optional[str]
    base_url: Optional[str]
    api: str
    model: str
    ready_timeout_s: float
    env: Dict[str, str]


@dataclass
class TelemetryConfig:
    source: str
    interval_s: float
    idle_baseline_s: float


@dataclass
class Job:
    path: str
    run_id: str
    telemetry: TelemetryConfig
    gpu_indices: Optional[List[int]]
    gpu_count: Optional[int]
    server: Optional[ServerConfig]
    sim: Optional[Dict[str, Any]]
    points: List[PointConfig]

    @property
    def dir(self) -> str:
        return os.path.dirname(self.path)


TELEMETRY_SOURCES = ("auto", "nvml", "nvidia-smi", "amd-smi", "sim")
DATASET_FORMATS = ("auto", "alpaca", "gsm8k", "sharegpt", "prompts")


def _parse_length(fields: _Fields, key: str) -> Optional[LengthDist]:
    value = fields.data.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 1:
            raise fields.error(key, "must be at least 1 token, got %s" % _describe_value(value))
        return LengthDist("fixed", float(value))
    d = _Fields(value, fields.path(key))
    std = d.number("std", 0.0, minimum=0)
    dist = d.string("dist", "normal" if std else "fixed", choices=("fixed", "normal", "uniform", "lognormal"))
    low = d.integer("min", None, minimum=1)
    high = d.integer("max", None, minimum=1)
    if low is not None and high is not None and low > high:
        raise d.error("min", "is larger than max (%d > %d)" % (low, high))
    return LengthDist(dist, d.number("mean", above=0), std, low, high)


def _parse_dataset(fields: _Fields, job_dir: str) -> DatasetConfig:
    kind = fields.string("kind", choices=("synthetic", "file"))
    if kind == "synthetic":
        inputs = _parse_length(fields, "input_tokens")
        if inputs is None:
            raise fields.error("input_tokens", "required for a synthetic dataset (e.g. {\"dist\": \"fixed\", \"mean\": 256})")
        return DatasetConfig("synthetic", inputs, _parse_length(fields, "output_tokens"))
    path = os.path.join(job_dir, fields.string("path"))
    fmt = fields.string("format", "auto", choices=DATASET_FORMATS)
    prompts = load_prompt_file(path, fmt, fields.path("path"))
    return DatasetConfig("file", None, _parse_length(fields, "output_tokens"), path, fmt, prompts)


def _parse_workload(fields: _Fields, job_dir: str) -> WorkloadConfig:
    kind = fields.string("kind", "http", choices=("http", "command"))
    time_limit = fields.number("time_limit_s", None, above=0)
    seed = fields.integer("seed", 0)
    if kind == "command":
        command = fields.string("command")
        if not command.strip():
            raise fields.error("command", "is empty")
        return WorkloadConfig("command", None, 0, 0, None, None, 0, 0.0, False, time_limit, seed, command)
    dataset_fields = fields.section("dataset")
    if dataset_fields is None:
        raise fields.error("dataset", "required field is missing (an http workload needs prompts)")
    concurrency = fields.integer("concurrency", None, minimum=1)
    rate = fields.number("request_rate", None, above=0)
    if (concurrency is None) == (rate is None):
        raise fields.error("concurrency", "set exactly one of concurrency and request_rate")
    return WorkloadConfig(
        kind="http",
        dataset=_parse_dataset(dataset_fields, job_dir),
        num_prompts=fields.integer("num_prompts", minimum=1),
        max_tokens=fields.integer("max_tokens", 256, minimum=1),
        concurrency=concurrency,
        request_rate=rate,
        warmup_requests=fields.integer("warmup_requests", 0, minimum=0),
        temperature=fields.number("temperature", 0.0, minimum=0),
        ignore_eos=fields.boolean("ignore_eos", True),
        time_limit_s=time_limit,
        seed=seed,
        command=None,
    )


def _parse_server(fields: Optional[_Fields]) -> Optional[ServerConfig]:
    if fields is None:
        return None
    sim = fields.boolean("sim", False)
    command = fields.string("command", None)
    base_url = fields.string("base_url", None)
    if not sim and not command and not base_url:
        return None
    if not sim:
        if not base_url:
            raise fields.error("base_url", "required when server.command is set (where the server will listen)")
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise fields.error("base_url", "expected an http(s) URL such as http://127.0.0.1:8000/v1, got %s"
                               % _describe_value(base_url))
    env = fields.raw("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, (str, int, float)) for v in env.values()):
        raise fields.error("env", "expected an object of NAME: value strings")
    return ServerConfig(
        sim=sim,
        command=command,
        base_url=base_url,
        api=fields.string("api", "completions", choices=("completions", "chat")),
        model=fields.string("model", "sim-model" if sim else _MISSING),
        ready_timeout_s=fields.number("ready_timeout_s", 600.0, above=0),
        env={str(k): str(v) for k, v in env.items()},
    )


def parse_job(data: Any, path: str) -> Job:
    top = _Fields(data, "")
    version = top.integer("v", 1)
    if version != PROTOCOL_VERSION:
        raise top.error("v", "job format version %d is not supported by this agent (it speaks %d)"
                        % (version, PROTOCOL_VERSION))
    run_id = top.string("run_id")
    if not re.match(r"^[A-Za-z0-9._-]+$", run_id):
        raise top.error("run_id", "use only letters, digits, '.', '_' and '-', got %s" % _describe_value(run_id))

    tel = top.section("telemetry") or _Fields({}, "telemetry")
    telemetry = TelemetryConfig(
        source=tel.string("source", "auto", choices=TELEMETRY_SOURCES),
        interval_s=tel.number("interval_s", 0.1, minimum=0.01),
        idle_baseline_s=tel.number("idle_baseline_s", 5.0, minimum=0),
    )

    gpus = top.section("gpus") or _Fields({}, "gpus")
    indices = gpus.array("indices", None)
    if indices is not None:
        for n, index in enumerate(indices):
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise gpus.error("indices[%d]" % n, "expected a GPU index (0, 1, ...), got %s" % _describe_value(index))
        if len(set(indices)) != len(indices):
            raise gpus.error("indices", "lists a GPU twice")
    count = gpus.integer("count", None, minimum=1)

    server = _parse_server(top.section("server"))
    sim_profile = None
    needs_sim = (server is not None and server.sim) or telemetry.source == "sim"
    if top.data.get("sim") is not None:
        sim_profile = parse_sim_profile(top.data["sim"], "sim")
    elif needs_sim:
        raise top.error("sim", "a SimProfile is required when server.sim is true or telemetry.source is \"sim\"")

    points = []
    seen_ids = set()
    point_list = top.array("points")
    for n, raw_point in enumerate(point_list):
        p = _Fields(raw_point, "points[%d]" % n)
        point_id = p.string("id")
        if point_id in seen_ids:
            raise p.error("id", "duplicate point id %s" % _describe_value(point_id))
        seen_ids.add(point_id)
        workload_fields = p.section("workload")
        if workload_fields is None:
            raise p.error("workload", "required field is missing")
        workload = _parse_workload(workload_fields, os.path.dirname(path))
        if workload.kind == "http" and server is None:
            raise p.error("workload.kind", "an http workload needs a server: set server.base_url, server.command "
                                           "or server.sim")
        points.append(PointConfig(
            id=point_id,
            label=p.string("label", point_id),
            power_cap_w=p.number("power_cap_w", None, above=0),
            repeats=p.integer("repeats", 1, minimum=1),
            workload=workload,
        ))
    return Job(path, run_id, telemetry, indices, count, server, sim_profile, points)


def load_job(path: str) -> Job:
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise JobError("job file %s: cannot read it: %s" % (path, e.strerror or e))
    try:
        data = json.loads(text)
    except ValueError as e:
        raise JobError("job file %s is not valid JSON: %s" % (path, e))
    try:
        return parse_job(data, path)
    except JobError as e:
        raise JobError("job file %s: %s" % (path, e))


# ----------------------------------------------------------------------------------------------------
# Prompts
# ----------------------------------------------------------------------------------------------------

# Common short English words: most tokenizers make one token of each (with its leading space), and the
# simulated server counts whitespace-separated words, so N words is about N tokens everywhere.
WORDS = (
    "the of and to in is it you that he was for on are with as his they be at one have this from or had by "
    "but some what there we can out other were all your when up use word how said an each she which do their "
    "time if will way about many then them would write like so these her long make thing see him two has look "
    "more day could go come did my sound no most number who over know water than call first people may down "
    "side been now find any new work part take get place made live where after back little only round man year"
).split()


def synthetic_text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, words)))


def _detect_format(record: Any) -> Optional[str]:
    if isinstance(record, str):
        return "prompts"
    if isinstance(record, dict):
        if "conversations" in record:
            return "sharegpt"
        if "instruction" in record:
            return "alpaca"
        if "question" in record:
            return "gsm8k"
        if "prompt" in record:
            return "prompts"
    return None


def _extract_prompt(record: Any, fmt: str) -> Optional[str]:
    if fmt == "prompts":
        if isinstance(record, str):
            return record
        return record.get("prompt") if isinstance(record, dict) else None
    if not isinstance(record, dict):
        return None
    if fmt == "alpaca":
        instruction = record.get("instruction") or ""
        extra = record.get("input") or ""
        return "%s\n\n%s" % (instruction, extra) if extra else instruction
    if fmt == "gsm8k":
        return record.get("question")
    if fmt == "sharegpt":
        for turn in record.get("conversations") or []:
            if isinstance(turn, dict) and (turn.get("from") or turn.get("role")) in ("human", "user"):
                return turn.get("value") or turn.get("content")
        return None
    return None


def load_prompt_file(path: str, fmt: str, where: str) -> List[str]:
    """Prompts from a JSONL file or a JSON array, in alpaca, gsm8k, sharegpt or plain-prompt layout."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise JobError("%s: cannot read the dataset file %s: %s" % (where, path, e.strerror or e))
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except ValueError as e:
            raise JobError("%s: the dataset file %s is not valid JSON: %s" % (where, path, e))
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as e:
                raise JobError("%s: the dataset file %s, line %d, is not valid JSON: %s" % (where, path, number, e))
    if not records:
        raise JobError("%s: the dataset file %s holds no records" % (where, path))
    if fmt == "auto":
        fmt = _detect_format(records[0]) or ""
        if not fmt:
            keys = sorted(records[0].keys()) if isinstance(records[0], dict) else []
            raise JobError("%s: cannot tell the format of %s (first record has keys %s); set dataset.format to "
                           "alpaca, gsm8k, sharegpt or prompts" % (where, path, keys))
    prompts = [p for p in (_extract_prompt(r, fmt) for r in records) if isinstance(p, str) and p.strip()]
    if not prompts:
        raise JobError("%s: no %s-format prompts found in %s" % (where, fmt, path))
    return prompts


@dataclass
class RequestSpec:
    prompt: str
    prompt_tokens: int  # the intended length; replaced by the server's count when it reports usage
    max_tokens: int


def build_request_specs(workload: WorkloadConfig, count: int) -> List[RequestSpec]:
    """The point's requests in send order: warm-up requests first, then the measured ones."""
    dataset = workload.dataset
    rng = random.Random(workload.seed)
    specs = []
    for n in range(count):
        if dataset.kind == "synthetic":
            words = dataset.input_tokens.draw(rng)
            prompt = synthetic_text(rng, words)
        else:
            prompt = dataset.prompts[n % len(dataset.prompts)]  # a short file is reused cyclically
            words = len(prompt.split())
        wanted = dataset.output_tokens.draw(rng) if dataset.output_tokens else workload.max_tokens
        specs.append(RequestSpec(prompt, words, min(wanted, workload.max_tokens)))
    return specs


# ----------------------------------------------------------------------------------------------------
# Telemetry backends
# ----------------------------------------------------------------------------------------------------


class TelemetryUnavailable(Exception):
    """This backend cannot run on this host; the message says why."""


class TelemetryError(Exception):
    """A telemetry call failed (e.g. setting a power limit without permission)."""


class Telemetry:
    """One way of reading the GPUs: list them, sample them, read and set their power limits."""

    source = ""
    simulated = False

    def __init__(self) -> None:
        self.driver = "unknown"
        self.capabilities = []  # type: List[str]

    def gpus(self) -> List[Dict[str, Any]]:
        """Every GPU: {index, name, uuid, memory_mb, power_limit_w, default_limit_w, min_limit_w,
        max_limit_w, energy_counter}."""
        raise NotImplementedError

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        """(sample time, [{i, p_w, e_j?, util?, mem_util?, sm_mhz?, temp_c?, limit_w?}])."""
        raise NotImplementedError

    def get_limit_w(self, index: int) -> float:
        raise NotImplementedError

    def set_limit_w(self, index: int, watts: float) -> None:
        raise NotImplementedError

    def start(self, interval_s: float) -> None:
        """Called before sampling starts (streaming backends start their stream here)."""

    def close(self) -> None:
        pass


# --- NVML through ctypes ---

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0


class _NvmlUtilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class NvmlError(TelemetryError):
    def __init__(self, call: str, code: int, text: str) -> None:
        super().__init__("%s failed: %s (NVML error %d)" % (call, text, code))
        self.code = code


class NvmlTelemetry(Telemetry):
    """NVIDIA GPUs through libnvidia-ml.so.1 (the library nvidia-smi itself uses)."""

    source = "nvml"

    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get("WATTBENCH_NVML_LIB") or "libnvidia-ml.so.1"
        try:
            self._lib = ctypes.CDLL(path)
        except OSError as e:
            raise TelemetryUnavailable("libnvidia-ml.so.1 not loadable (%s)" % e)
        self._lib.nvmlErrorString.restype = ctypes.c_char_p
        try:
            self._call("nvmlInit_v2")
            count = ctypes.c_uint()
            self._call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        except NvmlError as e:
            raise TelemetryUnavailable("NVML did not start (%s)" % e)
        if count.value == 0:
            raise TelemetryUnavailable("NVML found no GPUs")
        self._handles = []  # type: List[ctypes.c_void_p]
        for index in range(count.value):
            handle = ctypes.c_void_p()
            self._call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(handle))
            self._handles.append(handle)
        buf = ctypes.create_string_buffer(96)
        if self._try("nvmlSystemGetDriverVersion", buf, ctypes.c_uint(96)):
            self.driver = buf.value.decode("utf-8", "replace")
        # Volta and newer keep a cumulative energy counter; older GPUs answer NOT_SUPPORTED.
        self._has_energy = [self._energy_mj(h) is not None for h in self._handles]
        self.capabilities = ["power", "power_limit", "util", "clocks", "temp"]
        if any(self._has_energy):
            self.capabilities.append("energy_counter")

    def _error_text(self, code: int) -> str:
        try:
            return (self._lib.nvmlErrorString(code) or b"").decode("utf-8", "replace")
        except Exception:
            return "error"

    def _call(self, name: str, *args: Any) -> None:
        fn = getattr(self._lib, name, None)
        if fn is None:
            raise NvmlError(name, NVML_ERROR_NOT_SUPPORTED, "not in this driver's NVML")
        code = fn(*args)
        if code != NVML_SUCCESS:
            raise NvmlError(name, code, self._error_text(code))

    def _try(self, name: str, *args: Any) -> bool:
        try:
            self._call(name, *args)
            return True
        except NvmlError:
            return False

    def _energy_mj(self, handle: ctypes.c_void_p) -> Optional[int]:
        value = ctypes.c_ulonglong()
        if self._try("nvmlDeviceGetTotalEnergyConsumption", handle, ctypes.byref(value)):
            return value.value
        return None

    def _uint(self, name: str, handle: ctypes.c_void_p, *extra: Any) -> Optional[int]:
        value = ctypes.c_uint()
        if self._try(name, handle, *(extra + (ctypes.byref(value),))):
            return value.value
        return None

    def _handle(self, index: int) -> ctypes.c_void_p:
        if not 0 <= index < len(self._handles):
            raise TelemetryError("GPU %d not found (NVML sees %d)" % (index, len(self._handles)))
        return self._handles[index]

    def gpus(self) -> List[Dict[str, Any]]:
        result = []
        for index, handle in enumerate(self._handles):
            name = ctypes.create_string_buffer(96)
            uuid = ctypes.create_string_buffer(96)
            self._try("nvmlDeviceGetName", handle, name, ctypes.c_uint(96))
            self._try("nvmlDeviceGetUUID", handle, uuid, ctypes.c_uint(96))
            memory = _NvmlMemory()
            low, high = ctypes.c_uint(), ctypes.c_uint()
            has_range = self._try("nvmlDeviceGetPowerManagementLimitConstraints", handle, ctypes.byref(low),
                                  ctypes.byref(high))
            limit = self._uint("nvmlDeviceGetPowerManagementLimit", handle)
            default = self._uint("nvmlDeviceGetPowerManagementDefaultLimit", handle)
            result.append({
                "index": index,
                "name": name.value.decode("utf-8", "replace"),
                "uuid": uuid.value.decode("utf-8", "replace"),
                "memory_mb": (memory.total // (1024 * 1024))
                if self._try("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory)) else None,
                "power_limit_w": limit / 1000.0 if limit is not None else None,
                "default_limit_w": default / 1000.0 if default is not None else None,
                "min_limit_w": low.value / 1000.0 if has_range else None,
                "max_limit_w": high.value / 1000.0 if has_range else None,
                "energy_counter": self._has_energy[index],
            })
        return result

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = time.time()
        rows = []
        for index in indices:
            handle = self._handle(index)
            milliwatts = ctypes.c_uint()
            self._call("nvmlDeviceGetPowerUsage", handle, ctypes.byref(milliwatts))
            row = {"i": index, "p_w": milliwatts.value / 1000.0}  # type: Dict[str, Any]
            if self._has_energy[index]:
                millijoules = self._energy_mj(handle)
                if millijoules is not None:
                    row["e_j"] = millijoules / 1000.0
            util = _NvmlUtilization()
            if self._try("nvmlDeviceGetUtilizationRates", handle, ctypes.byref(util)):
                row["util"] = util.gpu
                row["mem_util"] = util.memory
            sm = self._uint("nvmlDeviceGetClockInfo", handle, ctypes.c_int(NVML_CLOCK_SM))
            if sm is not None:
                row["sm_mhz"] = sm
            temp = self._uint("nvmlDeviceGetTemperature", handle, ctypes.c_int(NVML_TEMPERATURE_GPU))
            if temp is not None:
                row["temp_c"] = temp
            limit = self._uint("nvmlDeviceGetPowerManagementLimit", handle)
            if limit is not None:
                row["limit_w"] = limit / 1000.0
            rows.append(row)
        return t, rows

    def get_limit_w(self, index: int) -> float:
        value = ctypes.c_uint()
        self._call("nvmlDeviceGetPowerManagementLimit", self._handle(index), ctypes.byref(value))
        return value.value / 1000.0

    def set_limit_w(self, index: int, watts: float) -> None:
        try:
            self._call("nvmlDeviceSetPowerManagementLimit", self._handle(index), ctypes.c_uint(int(round(watts * 1000))))
        except NvmlError as e:
            if e.code == NVML_ERROR_NO_PERMISSION:
                raise TelemetryError("setting the power limit of GPU %d needs root (%s)" % (index, e))
            raise

    def close(self) -> None:
        self._try("nvmlShutdown")


# --- nvidia-smi ---

SMI_FIELDS = ("index", "name", "uuid", "memory.total", "power.draw", "power.limit", "power.default_limit",
              "power.min_limit", "power.max_limit", "utilization.gpu", "utilization.memory", "clocks.sm",
              "temperature.gpu")


def _smi_number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]", ...


class NvidiaSmiTelemetry(Telemetry):
    """NVIDIA GPUs through the nvidia-smi command. Samples come from one long-lived `nvidia-smi -lms`
    process rather than a process per sample (nvidia-smi takes tens of milliseconds to start)."""

    source = "nvidia-smi"

    def __init__(self) -> None:
        super().__init__()
        override = os.environ.get("WATTBENCH_NVIDIA_SMI")
        if override:
            if not os.access(override, os.X_OK):
                raise TelemetryUnavailable("nvidia-smi not found at %s" % override)
            self.exe = override
        else:
            found = shutil.which("nvidia-smi")
            if not found:
                raise TelemetryUnavailable("nvidia-smi not on PATH")
            self.exe = found
        try:
            rows = self._query(SMI_FIELDS + ("driver_version",))
        except TelemetryError as e:
            raise TelemetryUnavailable(str(e))
        if not rows:
            raise TelemetryUnavailable("nvidia-smi found no GPUs")
        self._static = {int(r["index"]): r for r in rows}
        self.driver = rows[0].get("driver_version") or "unknown"
        self.capabilities = ["power", "power_limit", "util", "clocks", "temp"]
        self._stream = None  # type: Optional[subprocess.Popen]
        self._latest = {}  # type: Dict[int, Tuple[float, Dict[str, str]]]
        self._interval_s = 0.1

    def _run(self, args: List[str]) -> str:
        try:
            done = subprocess.run([self.exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, universal_newlines=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TelemetryError("nvidia-smi %s failed: %s" % (" ".join(args), e))
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise TelemetryError("nvidia-smi %s %s: %s" % (" ".join(args), describe_exit(done.returncode),
                                                           message[-1] if message else "no output"))
        return done.stdout

    @staticmethod
    def _parse_rows(text: str, fields: Tuple[str, ...]) -> List[Dict[str, str]]:
        rows = []
        for values in csv.reader(io.StringIO(text), skipinitialspace=True):
            if len(values) == len(fields):
                rows.append(dict(zip(fields, [v.strip() for v in values])))
        return rows

    def _query(self, fields: Tuple[str, ...]) -> List[Dict[str, str]]:
        text = self._run(["--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])
        return self._parse_rows(text, fields)

    def gpus(self) -> List[Dict[str, Any]]:
        result = []
        for index, row in sorted(self._static.items()):
            memory = _smi_number(row["memory.total"])
            result.append({
                "index": index, "name": row["name"], "uuid": row["uuid"],
                "memory_mb": int(memory) if memory is not None else None,
                "power_limit_w": _smi_number(row["power.limit"]),
                "default_limit_w": _smi_number(row["power.default_limit"]),
                "min_limit_w": _smi_number(row["power.min_limit"]),
                "max_limit_w": _smi_number(row["power.max_limit"]),
                "energy_counter": False,
            })
        return result

    def start(self, interval_s: float) -> None:
        self._interval_s = interval_s
        try:
            self._stream = subprocess.Popen(
                [self.exe, "--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits",
                 "-lms", str(max(10, int(interval_s * 1000)))],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                universal_newlines=True, start_new_session=True)
        except OSError:
            self._stream = None
            return
        threading.Thread(target=self._read_stream, args=(self._stream,), name="nvidia-smi-stream",
                         daemon=True).start()

    def _read_stream(self, stream: subprocess.Popen) -> None:
        for line in stream.stdout:
            for row in self._parse_rows(line, SMI_FIELDS):
                try:
                    self._latest[int(row["index"])] = (time.time(), row)
                except ValueError:
                    pass

    @staticmethod
    def _sample_row(index: int, row: Dict[str, str]) -> Dict[str, Any]:
        sample = {"i": index, "p_w": _smi_number(row["power.draw"])}  # type: Dict[str, Any]
        for key, name in (("util", "utilization.gpu"), ("mem_util", "utilization.memory"),
                          ("sm_mhz", "clocks.sm"), ("temp_c", "temperature.gpu"), ("limit_w", "power.limit")):
            value = _smi_number(row[name])
            if value is not None:
                sample[key] = value
        return sample

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = time.time()
        freshest = t - max(1.0, 5 * self._interval_s)
        latest = self._latest
        if all(i in latest and latest[i][0] >= freshest for i in indices):
            return t, [self._sample_row(i, latest[i][1]) for i in indices]
        # The stream is not running (or stalled): ask once.
        rows = {int(r["index"]): r for r in self._query(SMI_FIELDS)}
        missing = [i for i in indices if i not in rows]
        if missing:
            raise TelemetryError("nvidia-smi did not report GPU %s" % missing)
        return t, [self._sample_row(i, rows[i]) for i in indices]

    def get_limit_w(self, index: int) -> float:
        for row in self._query(("index", "power.limit")):
            if int(row["index"]) == index:
                value = _smi_number(row["power.limit"])
                if value is None:
                    raise TelemetryError("nvidia-smi reports no power limit for GPU %d" % index)
                return value
        raise TelemetryError("nvidia-smi did not report GPU %d" % index)

    def set_limit_w(self, index: int, watts: float) -> None:
        self._run(["-i", str(index), "-pl", "%g" % watts])

    def close(self) -> None:
        if self._stream is not None and self._stream.poll() is None:
            try:
                os.killpg(self._stream.pid, signal.SIGTERM)
                self._stream.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


# --- AMD: rocm-smi / amd-smi (best effort, untested here) ---


def _first_number(text: Any) -> Optional[float]:
    match = re.search(r"-?\d+(?:\.\d+)?", str(text))
    return float(match.group(0)) if match else None


class RocmSmiTelemetry(Telemetry):
    """AMD GPUs through `rocm-smi --json`.

    BEST EFFORT: written from ROCm's documentation and never run on AMD hardware by Wattbench's tests.
    rocm-smi's JSON keys differ between ROCm releases, so fields are found by the words in their names."""

    source = "amd-smi"

    def __init__(self) -> None:
        super().__init__()
        self.exe = os.environ.get("WATTBENCH_ROCM_SMI") or shutil.which("rocm-smi")
        if not self.exe or not os.access(self.exe, os.X_OK):
            raise TelemetryUnavailable("rocm-smi not on PATH")
        try:
            info = self._json(["--showproductname", "--showmaxpower", "--showmeminfo", "vram"])
        except TelemetryError as e:
            raise TelemetryUnavailable(str(e))
        self._cards = self._cards_of(info)
        if not self._cards:
            raise TelemetryUnavailable("rocm-smi found no GPUs")
        self._info = info
        self.driver = "rocm-smi"
        self.capabilities = ["power", "power_limit", "util", "temp"]

    def _json(self, args: List[str]) -> Dict[str, Any]:
        try:
            done = subprocess.run([self.exe] + args + ["--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  universal_newlines=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TelemetryError("rocm-smi failed: %s" % e)
        if done.returncode != 0:
            raise TelemetryError("rocm-smi %s: %s" % (describe_exit(done.returncode), done.stderr.strip()[-300:]))
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise TelemetryError("rocm-smi printed no JSON")

    @staticmethod
    def _cards_of(data: Dict[str, Any]) -> Dict[int, str]:
        cards = {}
        for key in data:
            match = re.match(r"card(\d+)$", key)
            if match:
                cards[int(match.group(1))] = key
        return cards

    @staticmethod
    def _find(entry: Dict[str, Any], *words: str) -> Optional[float]:
        for key, value in entry.items():
            if all(w in key.lower() for w in words):
                number = _first_number(value)
                if number is not None:
                    return number
        return None

    def gpus(self) -> List[Dict[str, Any]]:
        result = []
        for index, card in sorted(self._cards.items()):
            entry = self._info.get(card, {})
            name = next((v for k, v in entry.items() if "series" in k.lower() or "name" in k.lower()), "AMD GPU")
            total = self._find(entry, "vram", "total")
            limit = self._find(entry, "max", "power")
            result.append({
                "index": index, "name": str(name), "uuid": card,
                "memory_mb": int(total / (1024 * 1024)) if total else None,
                "power_limit_w": limit, "default_limit_w": None, "min_limit_w": None, "max_limit_w": None,
                "energy_counter": False,
            })
        return result

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = time.time()
        data = self._json(["--showpower", "--showuse", "--showtemp"])
        rows = []
        for index in indices:
            entry = data.get("card%d" % index, {})
            row = {"i": index, "p_w": self._find(entry, "power", "(w)")}  # type: Dict[str, Any]
            util = self._find(entry, "use", "%")
            temp = self._find(entry, "temperature")
            if util is not None:
                row["util"] = util
            if temp is not None:
                row["temp_c"] = temp
            rows.append(row)
        return t, rows

    def get_limit_w(self, index: int) -> float:
        entry = self._json(["--showmaxpower"]).get("card%d" % index, {})
        value = self._find(entry, "max", "power")
        if value is None:
            raise TelemetryError("rocm-smi reports no power cap for GPU %d" % index)
        return value

    def set_limit_w(self, index: int, watts: float) -> None:
        self._json(["-d", str(index), "--setpoweroverdrive", "%d" % round(watts), "--autorespond", "y"])


class AmdSmiTelemetry(RocmSmiTelemetry):
    """AMD GPUs through `amd-smi` (the successor of rocm-smi): power readings only, no power caps.

    BEST EFFORT and untested: the JSON layout is matched loosely (first number under a key naming power)."""

    def __init__(self) -> None:
        Telemetry.__init__(self)
        self.exe = os.environ.get("WATTBENCH_AMD_SMI") or shutil.which("amd-smi")
        if not self.exe or not os.access(self.exe, os.X_OK):
            raise TelemetryUnavailable("amd-smi not on PATH")
        try:
            self._metrics = self._metric_list()
        except TelemetryError as e:
            raise TelemetryUnavailable(str(e))
        if not self._metrics:
            raise TelemetryUnavailable("amd-smi found no GPUs")
        self.driver = "amd-smi"
        self.capabilities = ["power"]

    def _metric_list(self) -> List[Dict[str, Any]]:
        try:
            done = subprocess.run([self.exe, "metric", "--power", "--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  universal_newlines=True, timeout=30)
            data = json.loads(done.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError) as e:
            raise TelemetryError("amd-smi metric --power failed: %s" % e)
        return data if isinstance(data, list) else [data]

    @staticmethod
    def _power_of(entry: Any) -> Optional[float]:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if "power" in key.lower() and not isinstance(value, (dict, list)):
                    number = _first_number(value)
                    if number is not None:
                        return number
            for value in entry.values():
                found = AmdSmiTelemetry._power_of(value)
                if found is not None:
                    return found
        return None

    def gpus(self) -> List[Dict[str, Any]]:
        return [{"index": n, "name": "AMD GPU", "uuid": "amd-%d" % n, "memory_mb": None, "power_limit_w": None,
                 "default_limit_w": None, "min_limit_w": None, "max_limit_w": None, "energy_counter": False}
                for n in range(len(self._metrics))]

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = time.time()
        metrics = self._metric_list()
        return t, [{"i": i, "p_w": self._power_of(metrics[i]) if i < len(metrics) else None} for i in indices]

    def get_limit_w(self, index: int) -> float:
        raise TelemetryError("power caps through amd-smi are not implemented; install rocm-smi")

    def set_limit_w(self, index: int, watts: float) -> None:
        raise TelemetryError("power caps through amd-smi are not implemented; install rocm-smi")


# --- Simulated GPUs ---

# The example profile of docs/protocol.md; a job's profile overrides it field by field.
DEFAULT_SIM_PROFILE = {
    "v": 1,
    "gpu": {"name": "Simulated H100-SXM-80GB", "count": 1, "idle_w": 70.0, "tdp_w": 700.0,
            "min_limit_w": 200.0, "max_limit_w": 700.0, "memory_mb": 81559},
    "prefill": {"fixed_s": 0.004, "s_per_token": 0.00012, "util": 0.95},
    "decode": {"fixed_s": 0.0085, "s_per_seq": 0.00004, "s_per_ctx_token": 2.1e-8,
               "util_base": 0.35, "util_per_seq": 0.004, "util_max": 0.95},
    "cap": {"time_exponent": 0.25},
    "noise": {"rel_std": 0.0, "seed": 1},
}


def parse_sim_profile(data: Any, where: str = "sim") -> Dict[str, Any]:
    """A validated SimProfile with every field present (missing ones from the example profile)."""
    top = _Fields(data, where)
    profile = {"v": 1}  # type: Dict[str, Any]
    for section, defaults in DEFAULT_SIM_PROFILE.items():
        if section == "v":
            continue
        fields = top.section(section) or _Fields({}, top.path(section))
        values = {}
        for key, default in defaults.items():
            if key == "name":
                name = fields.string(key, default)
                values[key] = name if name.startswith("Simulated ") else "Simulated " + name
            elif key in ("count", "memory_mb", "seed"):
                values[key] = fields.integer(key, default, minimum=1 if key == "count" else 0)
            elif key in ("util", "util_base", "util_per_seq", "util_max"):
                values[key] = fields.number(key, default, minimum=0, maximum=1)
            else:
                values[key] = fields.number(key, default, minimum=0)
        profile[section] = values
    gpu = profile["gpu"]
    if gpu["tdp_w"] <= gpu["idle_w"]:
        raise JobError("%s.gpu.tdp_w: must be above idle_w (%g W)" % (where, gpu["idle_w"]))
    if not gpu["idle_w"] < gpu["min_limit_w"] <= gpu["max_limit_w"]:
        raise JobError("%s.gpu: need idle_w < min_limit_w <= max_limit_w, got %g, %g, %g"
                       % (where, gpu["idle_w"], gpu["min_limit_w"], gpu["max_limit_w"]))
    return profile


class SimHardware:
    """The persistent state of the simulated GPUs, kept in a directory like real hardware keeps it:

    limits.json  the power limit of each GPU (survives agents and servers, as a real limit survives a
                 killed agent until the driver is reloaded)
    power.log    one line `t u p0 p1 ...` each time the power changes: from time t on, utilisation u and
                 GPU power p0, p1, ... watts, constant until the next line; the first line is the epoch
                 of the energy counters. The sim server appends, the sim backend and sim-truth read.
    lock         flock()ed while a line is appended or while a reader takes its sample time, so every
                 line older than a reader's sample time is in the file when the reader looks."""

    def __init__(self, directory: str, profile: Dict[str, Any]) -> None:
        self.dir = directory
        self.gpu = profile["gpu"]
        self.count = int(self.gpu["count"])
        self.default_limit_w = min(max(self.gpu["tdp_w"], self.gpu["min_limit_w"]), self.gpu["max_limit_w"])
        os.makedirs(directory, exist_ok=True)
        self.power_path = os.path.join(directory, "power.log")
        self.limits_path = os.path.join(directory, "limits.json")
        self._thread_lock = threading.Lock()
        self._lock_fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        self._limits_key = None  # type: Optional[Tuple[int, int, int]]
        self._limits = [self.default_limit_w] * self.count
        with self.locked():
            if not os.path.exists(self.power_path) or os.path.getsize(self.power_path) == 0:
                self._append_line(0.0, [self.gpu["idle_w"]] * self.count)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _append_line(self, util: float, powers: List[float]) -> float:
        t = time.time()
        line = "%r %r %s\n" % (t, util, " ".join(repr(float(p)) for p in powers))
        fd = os.open(self.power_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("ascii"))
        finally:
            os.close(fd)
        return t

    def append_power(self, util: float, powers: List[float]) -> float:
        """Record that the power changes now; returns the segment's start time."""
        with self.locked():
            return self._append_line(util, powers)

    def limits(self) -> List[float]:
        """Current power limit of every GPU (re-read only when limits.json changed)."""
        try:
            st = os.stat(self.limits_path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return [self.default_limit_w] * self.count
        if key != self._limits_key:
            try:
                stored = read_json_file(self.limits_path)
            except (OSError, ValueError):
                return list(self._limits)
            low, high = self.gpu["min_limit_w"], self.gpu["max_limit_w"]
            self._limits = [min(max(float(stored.get(str(i), self.default_limit_w)), low), high)
                            for i in range(self.count)]
            self._limits_key = key
        return list(self._limits)

    def set_limit(self, index: int, watts: float) -> None:
        if not 0 <= index < self.count:
            raise TelemetryError("simulated GPU %d not found (there are %d)" % (index, self.count))
        low, high = self.gpu["min_limit_w"], self.gpu["max_limit_w"]
        if not low <= watts <= high:
            raise TelemetryError("power limit %g W is outside GPU %d's range %g-%g W" % (watts, index, low, high))
        with self.locked():
            try:
                stored = read_json_file(self.limits_path)
            except (OSError, ValueError):
                stored = {}
            stored[str(index)] = float(watts)
            write_json_atomic(self.limits_path, stored)


class SimPowerLog:
    """Reads power.log incrementally and integrates it into one cumulative energy counter per GPU.

    The counter at time t is acc_k + p_k * (t - t_k) for the last segment k starting at or before t,
    acc_k being summed segment by segment in file order. The sim backend's samples and `sim-truth` both
    use exactly this arithmetic, so their numbers agree to the last bit."""

    def __init__(self, path: str, gpu_count: Optional[int] = None, keep_history: bool = False) -> None:
        self._file = open(path, "rb")
        self._partial = b""
        self.gpu_count = gpu_count
        self.t_last = None  # type: Optional[float]
        self.util_last = 0.0
        self.power_last = []  # type: List[float]
        self._acc_last = []  # type: List[float]
        self._history = [] if keep_history else None  # type: Optional[List[Tuple[float, List[float], List[float]]]]
        self._history_t = []  # type: List[float]

    def refresh(self) -> None:
        data = self._file.read()
        if not data:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for its end
        for line in lines:
            if line.strip():
                self._add(line.split())

    def _add(self, fields: List[bytes]) -> None:
        t, util = float(fields[0]), float(fields[1])
        powers = [float(x) for x in fields[2:]]
        if self.gpu_count is None:
            self.gpu_count = len(powers)
        if len(powers) < self.gpu_count:
            powers += [powers[-1] if powers else 0.0] * (self.gpu_count - len(powers))
        powers = powers[:self.gpu_count]
        if self.t_last is None:
            acc = [0.0] * self.gpu_count
        else:
            acc = [a + p * (t - self.t_last) for a, p in zip(self._acc_last, self.power_last)]
        self.t_last, self.util_last, self.power_last, self._acc_last = t, util, powers, acc
        if self._history is not None:
            self._history.append((t, acc, powers))
            self._history_t.append(t)

    def energy_now(self, t: float) -> List[float]:
        """Counters at time t, which must not be before the last segment read."""
        if self.t_last is None:
            return [0.0] * (self.gpu_count or 0)
        t = max(t, self.t_last)
        return [a + p * (t - self.t_last) for a, p in zip(self._acc_last, self.power_last)]

    def energy_at(self, t: float) -> List[float]:
        """Counters at any time t (needs keep_history)."""
        k = bisect.bisect_right(self._history_t, t) - 1
        if k < 0:
            return [0.0] * (self.gpu_count or 0)
        t_k, acc, powers = self._history[k]
        return [a + p * (t - t_k) for a, p in zip(acc, powers)]

    def close(self) -> None:
        self._file.close()


class SimTelemetry(Telemetry):
    """Simulated GPUs (SimProfile): power follows the sim server's load, the energy counter is the exact
    integral of that power, power limits persist in the sim directory."""

    source = "sim"
    simulated = True
    # p_w is the mean power since the previous sample (see sample()); integrate it as such.
    power_reading = "interval_average"

    def __init__(self, profile: Dict[str, Any], sim_dir: str) -> None:
        super().__init__()
        self.profile = profile
        self.sim_dir = sim_dir
        try:
            self.hardware = SimHardware(sim_dir, profile)
        except OSError as e:
            raise TelemetryUnavailable("the sim directory %s is not usable: %s" % (sim_dir, e))
        self._log = SimPowerLog(self.hardware.power_path, self.hardware.count)
        self.driver = "wattbench-sim %s" % AGENT_VERSION
        self.capabilities = ["power", "energy_counter", "power_limit", "util", "simulated"]
        self._uuid_tag = "%08x" % zlib.crc32(os.path.realpath(sim_dir).encode("utf-8"))
        self._previous = None  # type: Optional[Tuple[float, List[float]]]

    def gpus(self) -> List[Dict[str, Any]]:
        gpu = self.hardware.gpu
        limits = self.hardware.limits()
        return [{
            "index": i, "name": gpu["name"], "uuid": "GPU-SIM-%s-%d" % (self._uuid_tag, i),
            "memory_mb": gpu["memory_mb"], "power_limit_w": limits[i],
            "default_limit_w": self.hardware.default_limit_w, "min_limit_w": gpu["min_limit_w"],
            "max_limit_w": gpu["max_limit_w"], "energy_counter": True,
        } for i in range(self.hardware.count)]

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        with self.hardware.locked():
            self._log.refresh()
            t = time.time()  # taken under the lock: every segment that began before t has been read
            energy = self._log.energy_now(t)
            power, util = self._log.power_last, self._log.util_last
        limits = self.hardware.limits()
        # Power is reported as the average since the previous sample, as NVML reports an averaged power
        # on recent GPUs: a step-by-step simulated load then integrates correctly from samples alone.
        previous = self._previous
        self._previous = (t, energy)
        rows = []
        for i in indices:
            if not 0 <= i < self.hardware.count:
                raise TelemetryError("simulated GPU %d not found" % i)
            p_w = power[i]
            if previous is not None and t > previous[0]:
                p_w = (energy[i] - previous[1][i]) / (t - previous[0])
            rows.append({"i": i, "p_w": round(p_w, 3), "e_j": energy[i], "util": round(util * 100.0, 2),
                         "limit_w": limits[i]})
        return t, rows

    def get_limit_w(self, index: int) -> float:
        if not 0 <= index < self.hardware.count:
            raise TelemetryError("simulated GPU %d not found" % index)
        return self.hardware.limits()[index]

    def set_limit_w(self, index: int, watts: float) -> None:
        self.hardware.set_limit(index, watts)

    def close(self) -> None:
        self._log.close()


def open_telemetry(source: str, sim_profile: Optional[Dict[str, Any]] = None,
                   sim_dir: Optional[str] = None) -> Telemetry:
    """The backend for `source`; `auto` tries NVML, nvidia-smi, then AMD's tools.

    Raises TelemetryUnavailable saying why nothing could be used."""
    if source == "sim":
        return SimTelemetry(sim_profile or parse_sim_profile({}), sim_dir or default_sim_dir())
    single = {"nvml": (NvmlTelemetry,), "nvidia-smi": (NvidiaSmiTelemetry,),
              "amd-smi": (RocmSmiTelemetry, AmdSmiTelemetry)}
    if source in single:
        reasons = []
        for backend in single[source]:
            try:
                return backend()
            except TelemetryUnavailable as e:
                reasons.append(str(e))
        raise TelemetryUnavailable("telemetry source %s unavailable: %s" % (source, ", ".join(reasons)))
    if source != "auto":
        raise TelemetryUnavailable("unknown telemetry source %r" % source)
    reasons = []
    for backend in (NvmlTelemetry, NvidiaSmiTelemetry, RocmSmiTelemetry, AmdSmiTelemetry):
        try:
            return backend()
        except TelemetryUnavailable as e:
            reasons.append(str(e))
    error = TelemetryUnavailable("no GPU telemetry found: %s, %s; set telemetry.source: sim to simulate"
                                 % (reasons[0], reasons[1]))
    error.detail = "AMD: %s" % "; ".join(reasons[2:])  # type: ignore[attr-defined]
    raise error


# ----------------------------------------------------------------------------------------------------
# Power caps, kept safe across crashes
# ----------------------------------------------------------------------------------------------------


def caps_file_path() -> str:
    return os.path.join(wattbench_home(), "caps-saved.json")


class CapKeeper:
    """Power limits this agent changes. The originals are written to caps-saved.json (fsync'ed) before the
    first change, and the file is deleted only after they are back; an agent killed in between leaves
    the file for the next `run` or `restore-caps`."""

    def __init__(self) -> None:
        self.path = caps_file_path()
        self.originals = None  # type: Optional[Dict[int, float]]

    def save_originals(self, telemetry: Telemetry, indices: List[int]) -> None:
        if self.originals is not None:
            return
        if os.path.exists(self.path):
            raise TelemetryError("%s already exists: another agent holds changed power limits on this host "
                                 "(wait for it, or run `restore-caps`)" % self.path)
        originals = {i: telemetry.get_limit_w(i) for i in indices}
        record = {
            "v": 1, "pid": os.getpid(), "pid_start": process_start_ticks(os.getpid()),
            "host": socket.gethostname(), "saved_at": time.time(), "source": telemetry.source,
            "gpus": [{"i": i, "limit_w": w} for i, w in sorted(originals.items())],
        }
        if isinstance(telemetry, SimTelemetry):
            record["sim_dir"] = os.path.abspath(telemetry.sim_dir)
            record["sim_profile"] = telemetry.profile
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        write_json_atomic(self.path, record, durable=True)
        self.originals = originals

    def apply(self, telemetry: Telemetry, indices: List[int], watts: float) -> List[Dict[str, Any]]:
        self.save_originals(telemetry, indices)
        changes = []
        for i in indices:
            before = telemetry.get_limit_w(i)
            telemetry.set_limit_w(i, watts)
            changes.append({"i": i, "from_w": before, "to_w": watts})
        return changes

    def restore(self, telemetry: Telemetry) -> List[Dict[str, Any]]:
        """Put the originals back, then forget them (raises, keeping the file, if that fails)."""
        if self.originals is None:
            return []
        changes = _restore_limits(telemetry, self.originals)
        os.remove(self.path)
        fsync_dir(os.path.dirname(self.path))
        self.originals = None
        return changes


def _restore_limits(telemetry: Telemetry, originals: Dict[int, float]) -> List[Dict[str, Any]]:
    changes = []
    for i, original in sorted(originals.items()):
        current = telemetry.get_limit_w(i)
        if abs(current - original) > 1e-6:
            telemetry.set_limit_w(i, original)
        changes.append({"i": i, "from_w": current, "to_w": original})
    return changes


def restore_leftover_caps() -> Dict[str, Any]:
    """Restore the limits in a caps-saved.json left by an agent that died hard.

    Returns {status: nothing|restored|busy|failed, message, gpus: [{i, from_w, to_w}]}."""
    path = caps_file_path()
    if not os.path.exists(path):
        return {"status": "nothing", "message": "no saved power limits to restore", "gpus": []}
    try:
        record = read_json_file(path)
        originals = {int(g["i"]): float(g["limit_w"]) for g in record["gpus"]}
        source = record["source"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return {"status": "failed", "gpus": [], "message": "%s is unreadable (%s); check the GPUs' power limits "
                "by hand and delete it" % (path, e)}
    owner = record.get("pid")
    if owner != os.getpid() and same_process(owner, record.get("pid_start")):
        return {"status": "busy", "gpus": [], "message": "agent pid %s is still running and will restore its own "
                "power limits" % owner}
    try:
        profile = parse_sim_profile(record.get("sim_profile") or {}) if source == "sim" else None
        telemetry = open_telemetry(source, profile, record.get("sim_dir"))
    except (TelemetryUnavailable, JobError) as e:
        return {"status": "failed", "gpus": [], "message": "cannot restore the limits saved in %s: %s" % (path, e)}
    try:
        changes = _restore_limits(telemetry, originals)
        os.remove(path)
        fsync_dir(os.path.dirname(path))
    except (TelemetryError, OSError) as e:
        return {"status": "failed", "gpus": [], "message": "restoring the limits saved in %s failed: %s" % (path, e)}
    finally:
        telemetry.close()
    summary = ", ".join("GPU %d %g W -> %g W" % (c["i"], c["from_w"], c["to_w"]) for c in changes)
    return {"status": "restored", "gpus": changes,
            "message": "restored power limits left by agent pid %s (saved %s): %s"
                       % (owner, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("saved_at", 0))),
                          summary)}


# ----------------------------------------------------------------------------------------------------
# Processes: the inference server and command workloads
# ----------------------------------------------------------------------------------------------------


class ManagedProcess:
    """A child in its own session (so its own process group), stopped as a group: TERM, then KILL."""

    def __init__(self, command: Any, shell: bool, env: Dict[str, str], stdout: Any, stderr: Any,
                 cwd: Optional[str] = None) -> None:
        self.proc = subprocess.Popen(command, shell=shell, env=env, stdout=stdout, stderr=stderr,
                                     stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self.pgid = self.proc.pid  # start_new_session: the child leads a new group

    def exit_code(self) -> Optional[int]:
        return self.proc.poll()

    def stop(self, grace_s: float = SERVER_STOP_GRACE_S) -> None:
        """Stop the whole group, also when the leader is already gone but its children are not."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            self.proc.poll()
            if not group_alive(self.pgid):
                break
            try:
                os.killpg(self.pgid, sig)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the leader so it does not linger as a zombie
                if not group_alive(self.pgid):
                    break
                time.sleep(0.05)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class LogTail(threading.Thread):
    """Mirrors new lines of server.log as `log` events: every line written before the server was ready,
    afterwards only lines that look like warnings or errors (a busy server can log a line per request)."""

    NOTABLE = re.compile(r"error|warn|exception|traceback|fatal|killed|out of memory", re.IGNORECASE)
    MAX_LINES_PER_READ = 200

    def __init__(self, path: str, events: EventWriter) -> None:
        super().__init__(name="server-log", daemon=True)
        self.path = path
        self.events = events
        self._ready_offset = None  # type: Optional[int]
        self._stop_event = threading.Event()

    def mark_ready(self) -> None:
        try:
            self._ready_offset = os.path.getsize(self.path)
        except OSError:
            self._ready_offset = 0

    def run(self) -> None:
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        partial = b""
        offset = 0  # file offset of the start of `partial`
        with f:
            while True:
                stopping = self._stop_event.wait(0.5)
                data = f.read()
                if data:
                    lines = (partial + data).split(b"\n")
                    partial = lines.pop()
                    for number, raw in enumerate(lines):
                        offset += len(raw) + 1
                        if number >= self.MAX_LINES_PER_READ:
                            continue
                        line = raw.decode("utf-8", "replace").rstrip()
                        notable = self.NOTABLE.search(line)
                        before_ready = self._ready_offset is None or offset <= self._ready_offset
                        if line and (before_ready or notable):
                            self.events.emit("log", level="warn" if notable else "info", msg=line[:500],
                                             source="server")
                if stopping:
                    return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


# ----------------------------------------------------------------------------------------------------
# Load generation against an OpenAI-compatible server
# ----------------------------------------------------------------------------------------------------


class Endpoint:
    def __init__(self, base_url: str, api: str, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.api = api
        self.model = model

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    @property
    def generate_path(self) -> str:
        return self.base_path + ("/chat/completions" if self.api == "chat" else "/completions")

    def probe(self) -> Tuple[bool, str]:
        """(ready, what went wrong): GET base_url/models, then /health on the root."""
        first_error = ""
        for path in (self.base_path + "/models", "/health"):
            conn = self.connection(PROBE_TIMEOUT_S)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return True, ""
                error = "GET %s answered HTTP %d" % (path, response.status)
            except (OSError, http.client.HTTPException) as e:
                error = "GET %s: %s" % (path, describe_request_error(e, self))
            finally:
                conn.close()
            first_error = first_error or error
        return False, first_error


def describe_request_error(error: BaseException, endpoint: Endpoint) -> str:
    where = "%s:%d" % (endpoint.host, endpoint.port)
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (%s)" % where
    if isinstance(error, socket.timeout):
        return "timed out (%s)" % where
    if isinstance(error, socket.gaierror):
        return "cannot resolve host %s" % endpoint.host
    return "%s: %s" % (type(error).__name__, error)


CONNECTION_ERRORS = (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead)


def stream_request(endpoint: Endpoint, spec: RequestSpec, workload: WorkloadConfig,
                   track: Callable[[Optional[socket.socket]], None]) -> Dict[str, Any]:
    """Send one streamed request and time its tokens. `track(sock)` registers the connection's socket so
    that another thread can abort the request by shutting it down; `track(None)` when done. (The socket,
    not the HTTPConnection: getresponse() hands the socket to the response and sets conn.sock = None.)"""
    body = {"model": endpoint.model, "max_tokens": spec.max_tokens, "temperature": workload.temperature,
            "stream": True, "stream_options": {"include_usage": True}}  # type: Dict[str, Any]
    if endpoint.api == "chat":
        body["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        body["prompt"] = spec.prompt
    if workload.ignore_eos:
        body["ignore_eos"] = True  # a vLLM/SGLang extension; only sent when asked for
    arrivals = []  # type: List[float]
    usage = None  # type: Optional[Dict[str, Any]]
    error = None  # type: Optional[str]
    connection_lost = False
    saw_done = False
    t_start = time.time()
    m_start = time.monotonic()
    conn = endpoint.connection(REQUEST_CONNECT_TIMEOUT_S)
    try:
        conn.connect()
        track(conn.sock)
        conn.sock.settimeout(REQUEST_READ_TIMEOUT_S)
        conn.request("POST", endpoint.generate_path, body=json.dumps(body),
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        response = conn.getresponse()
        if response.status != 200:
            text = response.read(600).decode("utf-8", "replace").strip().replace("\n", " ")
            error = "HTTP %d: %s" % (response.status, text[:300])
        else:
            for raw in response:
                if not raw.startswith(b"data:"):
                    continue
                data = raw[5:].strip()
                if data == b"[DONE]":
                    saw_done = True
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    error = "server error: %s" % json.dumps(chunk["error"])[:300]
                    break
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if choice.get("text") or delta.get("content") or delta.get("reasoning_content"):
                        arrivals.append(time.monotonic())
                        break
            if error is None and not saw_done:
                error = "the stream ended before [DONE] (connection closed)"
                connection_lost = True
    except CONNECTION_ERRORS as e:
        error = describe_request_error(e, endpoint)
        connection_lost = True
    except (OSError, http.client.HTTPException, ValueError) as e:
        error = describe_request_error(e, endpoint)
    finally:
        conn.close()
        track(None)
    latency = time.monotonic() - m_start
    output_tokens = len(arrivals)
    prompt_tokens = spec.prompt_tokens
    if usage:
        output_tokens = int(usage.get("completion_tokens", output_tokens) or 0)
        prompt_tokens = int(usage.get("prompt_tokens", prompt_tokens) or 0)
    return {
        "ok": error is None,
        "t_start": t_start,
        "t_end": t_start + latency,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "ttft_s": round(arrivals[0] - m_start, 6) if arrivals else None,
        "latency_s": round(latency, 6),
        "itl_s": [round(b - a, 6) for a, b in zip(arrivals, arrivals[1:])],
        "error": error,
        "connection_lost": connection_lost,
    }


@dataclass
class PointCounts:
    requests: int = 0
    errors: int = 0


STOP_TEXT = {"cancelled": "cancelled", "timeout": "point time limit reached", "server": "the server died"}


class LoadRunner:
    """Sends requests to an OpenAI-compatible endpoint at a fixed concurrency or at a Poisson request
    rate, and writes a `request` event for each. Stops early on cancel, time limit or a dead server,
    aborting requests in flight (their events say why)."""

    def __init__(self, agent: "AgentRun", endpoint: Endpoint, point: PointConfig, repeat: int,
                 counts: PointCounts, deadline: Optional[float]) -> None:
        self.agent = agent
        self.endpoint = endpoint
        self.point = point
        self.workload = point.workload
        self.repeat = repeat
        self.counts = counts
        self.deadline = deadline
        self._lock = threading.Lock()
        self._active = set()  # type: set
        self._stop_reason = None  # type: Optional[str]

    def run(self, specs: List[RequestSpec], warmup: bool, first_index: int) -> Optional[str]:
        """Send `specs`; returns None when all were sent and answered, else why it stopped early."""
        self._stop_reason = None
        numbered = list(enumerate(specs, first_index))
        if self.workload.request_rate is not None and not warmup:
            self._run_at_rate(numbered, self.workload.request_rate)
        else:
            # Warm-up in rate mode runs a few at a time: it only has to wake the server up.
            concurrency = self.workload.concurrency or min(len(specs), 4)
            self._run_concurrent(numbered, concurrency, warmup)
        return self._stop_reason

    def inflight(self) -> int:
        """Requests sent and not yet answered, for the live view."""
        with self._lock:
            return len(self._active)

    def _check_stop(self) -> Optional[str]:
        if self.agent.cancel.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "timeout"
        if self.agent.server_dead():
            return "server"
        return None

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            active = list(self._active)
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the thread reading it sees the end of the stream
            except OSError:
                pass

    def _send(self, index: int, spec: RequestSpec, warmup: bool) -> None:
        holder = {}  # type: Dict[str, Any]

        def track(sock: Optional[socket.socket]) -> None:
            with self._lock:
                if sock is None:
                    self._active.discard(holder.get("sock"))
                else:
                    holder["sock"] = sock
                    self._active.add(sock)
                    if self._stop_reason is not None:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)  # connected just as the stop came
                        except OSError:
                            pass

        result = stream_request(self.endpoint, spec, self.workload, track)
        connection_lost = result.pop("connection_lost")
        if not result["ok"] and self._stop_reason:
            result["error"] = "aborted (%s): %s" % (STOP_TEXT[self._stop_reason], result["error"])
        elif connection_lost:
            self.agent.check_server_after_failure()
        error = result.pop("error")
        event = {"point": self.point.id, "repeat": self.repeat, "i": index, "warmup": warmup}
        event.update(result)
        if error is not None:
            event["error"] = error
        self.agent.events.emit("request", **event)
        if not warmup:
            with self._lock:
                self.counts.requests += 1
                if not result["ok"]:
                    self.counts.errors += 1

    def _supervise(self, threads: List[threading.Thread]) -> None:
        """Wait for the request threads; stop them at cancel, time limit or a dead server."""
        while any(t.is_alive() for t in threads):
            reason = self._check_stop()
            if reason:
                self._stop(reason)
                break
            self.agent.cancel.wait(0.1)
        for t in threads:
            t.join(timeout=REQUEST_CONNECT_TIMEOUT_S + 5)

    def _run_concurrent(self, numbered: List[Tuple[int, RequestSpec]], concurrency: int, warmup: bool) -> None:
        pending = collections.deque(numbered)

        def worker() -> None:
            while self._stop_reason is None:
                reason = self._check_stop()  # also here: a failed request may have just found the server dead
                if reason:
                    self._stop(reason)
                    return
                with self._lock:
                    if not pending:
                        return
                    index, spec = pending.popleft()
                self._send(index, spec, warmup)

        threads = [threading.Thread(target=worker, name="load-%d" % n, daemon=True)
                   for n in range(min(concurrency, len(numbered)))]
        for t in threads:
            t.start()
        self._supervise(threads)

    def _run_at_rate(self, numbered: List[Tuple[int, RequestSpec]], rate: float) -> None:
        rng = random.Random(self.workload.seed * 1000003 + self.repeat)
        threads = []  # type: List[threading.Thread]
        next_arrival = time.monotonic()
        for index, spec in numbered:
            next_arrival += rng.expovariate(rate)
            while self._stop_reason is None:
                reason = self._check_stop()
                if reason:
                    self._stop(reason)
                    break
                remaining = next_arrival - time.monotonic()
                if remaining <= 0:
                    break
                self.agent.cancel.wait(min(remaining, 0.05))
            if self._stop_reason is not None:
                break
            thread = threading.Thread(target=self._send, args=(index, spec, False), name="load-%d" % index,
                                      daemon=True)
            thread.start()
            threads = [t for t in threads if t.is_alive()] + [thread]
        self._supervise(threads)


# ----------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Samples every GPU of the run every `interval_s` and writes one `sample` event per tick; `dt_s` is
    the interval really achieved (ticks are never bunched up to catch up after a delay)."""

    def __init__(self, telemetry: Telemetry, indices: List[int], interval_s: float, events: EventWriter,
                 current_point: Callable[[], Optional[str]],
                 inflight: Optional[Callable[[], Optional[int]]] = None) -> None:
        super().__init__(name="sampler", daemon=True)
        self.inflight = inflight
        self.telemetry = telemetry
        self.indices = indices
        self.interval_s = interval_s
        self.events = events
        self.current_point = current_point
        self._stop_event = threading.Event()
        self._sample_lock = threading.Lock()
        self._last_t = None  # type: Optional[float]

    def run(self) -> None:
        next_tick = time.monotonic()
        last_warning = 0.0
        while not self._stop_event.is_set():
            try:
                self.sample_now()
            except Exception as e:  # one bad reading must not end the measurement
                if time.monotonic() - last_warning > 30:
                    last_warning = time.monotonic()
                    self.events.emit("log", level="warn", msg="GPU sampling failed: %s" % e, source="agent")
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:
                next_tick = now
            self._stop_event.wait(next_tick - now)

    def sample_now(self) -> float:
        """Takes and writes one sample at once; returns its time. Called by the sampling thread on its
        ticks, and by the run at the edges of a measure window, so that a sample falls exactly on each
        edge and no sampling interval straddles one (what power did inside such an interval is unknown)."""
        with self._sample_lock:
            t, rows = self.telemetry.sample(self.indices)
            fields = {"gpus": rows}  # type: Dict[str, Any]
            point = self.current_point()
            if point is not None:
                fields["point"] = point
            fields["dt_s"] = round(t - self._last_t, 6) if self._last_t is not None else 0.0
            requests = self.inflight() if self.inflight is not None else None
            if requests is not None:
                fields["inflight"] = requests
            self.events.emit("sample", t=t, **fields)
            self._last_t = t
            return t

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# ----------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------


class Cancelled(Exception):
    """SIGTERM/SIGINT arrived: unwind, restore, report `cancelled`."""


class FatalError(Exception):
    def __init__(self, where: str, message: str, detail: Optional[str] = None, point: Optional[str] = None) -> None:
        super().__init__(message)
        self.where = where
        self.message = message
        self.detail = detail
        self.point = point


class RunState:
    """DIR/state.json: {pid, pgid, status, started, ended, run_id, server_pgid}, replaced atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = {"pid": os.getpid(), "pgid": os.getpgid(0), "status": "running", "started": time.time(),
                     "ended": None, "run_id": None, "server_pgid": None}  # type: Dict[str, Any]

    def update(self, **changes: Any) -> None:
        self.data.update(changes)
        try:
            write_json_atomic(self.path, self.data)
        except OSError:
            pass


class AgentRun:
    """One `run`: hello, baseline, server, points (cap, warm-up, measure, cool-down), restore, done."""

    def __init__(self, job_path: str, run_dir: str, sim_dir: Optional[str], events: EventWriter,
                 diag: DiagLog) -> None:
        self.job_path = job_path
        self.run_dir = run_dir
        self.sim_dir_arg = sim_dir
        self.events = events
        self.diag = diag
        self.state = RunState(os.path.join(run_dir, "state.json"))
        self.cancel = threading.Event()
        self.cancel_signal = None  # type: Optional[int]
        self.job = None  # type: Optional[Job]
        self.telemetry = None  # type: Optional[Telemetry]
        self.gpu_indices = []  # type: List[int]
        self.load_runner = None  # type: Optional[LoadRunner]
        self.gpu_info = {}  # type: Dict[int, Dict[str, Any]]
        self.sampler = None  # type: Optional[Sampler]
        self.caps = CapKeeper()
        self.server = None  # type: Optional[ManagedProcess]
        self.server_log = os.path.join(run_dir, "server.log")
        self.log_tail = None  # type: Optional[LogTail]
        self.endpoint = None  # type: Optional[Endpoint]
        self.current_point = None  # type: Optional[str]
        self._server_failure = None  # type: Optional[str]
        self._server_failure_reported = False
        self._probe_lock = threading.Lock()
        self._last_probe = 0.0

    # --- signals ---

    def install_signal_handlers(self, signals: Tuple[int, ...]) -> None:
        """Turn SIGTERM/SIGINT into `cancel`. The Python-level handler does nothing: the C handler writes
        the signal number to a pipe that a watcher thread reads, so no lock is ever taken inside a
        signal handler (which could deadlock against the interrupted main thread)."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, lambda signum, frame: None)

        def watch() -> None:
            while True:
                data = os.read(read_fd, 64)
                for signum in data:
                    if signum in signals:
                        self.cancel_signal = signum
                        self.cancel.set()

        threading.Thread(target=watch, name="signals", daemon=True).start()

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()

    # --- the whole run ---

    def execute(self) -> int:
        self.state.update()
        status, reason = "ok", None  # type: Tuple[str, Optional[str]]
        try:
            self.job = load_job(self.job_path)
            self.state.update(run_id=self.job.run_id)
            self.diag.write("job %s, run %s" % (self.job_path, self.job.run_id))
            self._restore_leftover_caps()
            self._open_telemetry()
            self._emit_hello()
            self.sampler = Sampler(self.telemetry, self.gpu_indices, self.job.telemetry.interval_s, self.events,
                                   lambda: self.current_point,
                                   lambda: self.load_runner.inflight() if self.load_runner is not None else None)
            self.telemetry.start(self.job.telemetry.interval_s)
            self.sampler.start()
            self._baseline()
            self._start_server()
            self._run_points()
            if self._server_failure:
                status, reason = "error", self._server_failure
        except Cancelled:
            name = signal.Signals(self.cancel_signal).name if self.cancel_signal else "a signal"
            status, reason = "cancelled", "cancelled by %s" % name
            self.events.emit("log", level="info", msg="cancel requested (%s): stopping" % name, source="agent")
        except JobError as e:
            status, reason = "error", str(e)
            self.events.emit("error", where="job", message=str(e), fatal=True)
        except FatalError as e:
            status, reason = "error", e.message
            fields = {"where": e.where, "message": e.message, "fatal": True}  # type: Dict[str, Any]
            if e.point:
                fields["point"] = e.point
            if e.detail:
                fields["detail"] = e.detail
            self.events.emit("error", **fields)
        except Exception as e:
            self.diag.write(traceback.format_exc())
            status, reason = "error", "internal error: %s: %s" % (type(e).__name__, e)
            self.events.emit("error", where="agent", message=reason, fatal=True, detail=traceback.format_exc())
        caps_restored = self._cleanup()
        done = {"status": status, "caps_restored": caps_restored}  # type: Dict[str, Any]
        if reason:
            done["reason"] = reason
        self.events.emit("done", **done)
        # state.json says running|done|error|cancelled (docs/protocol.md); `done` is the event's `ok`
        self.state.update(status="done" if status == "ok" else status, ended=time.time())
        self.diag.write("done: %s%s" % (status, " (%s)" % reason if reason else ""))
        return 0 if status in ("ok", "cancelled") else 1

    def _cleanup(self) -> bool:
        """Restore limits, stop the server, stop sampling. Runs on every exit path; never raises."""
        self.current_point = None
        caps_restored = True
        if self.caps.originals is not None:
            self._phase("restore")
            try:
                changes = self.caps.restore(self.telemetry)
                self.events.emit("cap", action="restore", gpus=changes)
            except Exception as e:
                caps_restored = False
                self.diag.write(traceback.format_exc())
                self.events.emit("error", where="caps", fatal=False,
                                 message="could not restore the power limits: %s; the originals stay in %s, "
                                         "run `wattbench_agent.py restore-caps`" % (e, self.caps.path))
        if self.server is not None:
            self._phase("server_stop")
            try:
                self.server.stop()
            except Exception:
                self.diag.write(traceback.format_exc())
        if self.log_tail is not None:
            self.log_tail.stop()
        if self.sampler is not None:
            self.sampler.stop()
        if self.telemetry is not None:
            try:
                self.telemetry.close()
            except Exception:
                self.diag.write(traceback.format_exc())
        return caps_restored

    def _phase(self, phase: str, point: Optional[PointConfig] = None, repeat: Optional[int] = None) -> None:
        fields = {"phase": phase}  # type: Dict[str, Any]
        if point is not None:
            fields["point"] = point.id
            fields["repeat"] = repeat
        if phase in ("measure", "cooldown") and self.sampler is not None:
            # The measure window's edges get a sample of their own, taken at the edge's time.
            try:
                fields["t"] = self.sampler.sample_now()
            except Exception as e:
                self.diag.write("edge sample failed: %s" % e)
        self.events.emit("phase", **fields)

    # --- start-up ---

    def _restore_leftover_caps(self) -> None:
        result = restore_leftover_caps()
        if result["status"] == "restored":
            self.events.emit("log", level="info", msg=result["message"], source="agent")
        elif result["status"] in ("busy", "failed"):
            self.events.emit("log", level="warn", msg=result["message"], source="agent")

    def _sim_dir(self) -> str:
        return os.path.abspath(self.sim_dir_arg or default_sim_dir())

    def _open_telemetry(self) -> None:
        job = self.job
        try:
            self.telemetry = open_telemetry(job.telemetry.source, job.sim, self._sim_dir())
        except TelemetryUnavailable as e:
            raise FatalError("telemetry", str(e), detail=getattr(e, "detail", None))
        available = {g["index"]: g for g in self.telemetry.gpus()}
        if job.gpu_indices is not None:
            missing = [i for i in job.gpu_indices if i not in available]
            if missing:
                raise FatalError("gpus", "GPU %s not found: this host has %d GPU(s) (%s)"
                                 % (", ".join(map(str, missing)), len(available),
                                    ", ".join(map(str, sorted(available)))))
            self.gpu_indices = list(job.gpu_indices)
        else:
            count = job.gpu_count or len(available)
            if count > len(available):
                raise FatalError("gpus", "the job asks for %d GPUs but this host has %d" % (count, len(available)))
            self.gpu_indices = sorted(available)[:count]
        self.gpu_info = {i: available[i] for i in self.gpu_indices}
        self.diag.write("telemetry %s (%s), GPUs %s" % (self.telemetry.source, self.telemetry.driver,
                                                         self.gpu_indices))

    def _emit_hello(self) -> None:
        job = self.job
        simulated = self.telemetry.simulated or bool(job.server and job.server.sim)
        self.events.emit("hello", **hello_fields(self.telemetry, job.run_id, [self.gpu_info[i] for i in self.gpu_indices],
                                                 job.telemetry.interval_s, simulated))

    def _baseline(self) -> None:
        seconds = self.job.telemetry.idle_baseline_s
        if seconds > 0:
            self._phase("baseline")
            self._sleep(seconds)

    # --- the inference server ---

    def _start_server(self) -> None:
        config = self.job.server
        if config is None:
            return
        env = dict(os.environ)
        env.update(config.env)
        if config.sim:
            port = free_loopback_port()
            profile_path = os.path.join(self.run_dir, "sim-profile.json")
            write_json_atomic(profile_path, self.job.sim)
            command = [sys.executable, AGENT_FILE, "sim-server", "--port", str(port), "--profile", profile_path,
                       "--sim-dir", self._sim_dir(), "--model", config.model,
                       "--seed", str(self.job.sim["noise"]["seed"])]
            self.endpoint = Endpoint("http://127.0.0.1:%d/v1" % port, config.api, config.model)
            shell = False
            description = "simulated server (sim-server) on 127.0.0.1:%d" % port
        elif config.command:
            command = config.command
            self.endpoint = Endpoint(config.base_url, config.api, config.model)
            shell = True
            description = config.command
        else:
            # A server that is already running: it must answer now.
            self.endpoint = Endpoint(config.base_url, config.api, config.model)
            ready, error = self.endpoint.probe()
            if not ready:
                raise FatalError("server", "no server answers at %s (%s); start it, or set server.command so "
                                           "the agent starts it" % (config.base_url, error))
            self.events.emit("log", level="info", msg="using the server already running at %s" % config.base_url,
                             source="agent")
            return
        self._phase("server_start")
        log_file = open(self.server_log, "ab")
        try:
            self.server = ManagedProcess(command, shell, env, stdout=log_file, stderr=subprocess.STDOUT,
                                         cwd=self.job.dir)
        except OSError as e:
            raise FatalError("server", "could not start the server: %s" % e)
        finally:
            log_file.close()
        self.state.update(server_pgid=self.server.pgid)
        self.events.emit("log", level="info", msg="started the server (pid %d): %s" % (self.server.pid, description),
                         source="agent")
        self.log_tail = LogTail(self.server_log, self.events)
        self.log_tail.start()
        self._wait_ready(config.ready_timeout_s)
        self.log_tail.mark_ready()
        self._phase("server_ready")

    def _server_output(self) -> str:
        return "\n".join(tail_lines(self.server_log, SERVER_LOG_TAIL_LINES))

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            self._check_cancel()
            code = self.server.exit_code()
            if code is not None:
                raise FatalError("server", "the server %s before it became ready" % describe_exit(code),
                                 detail=self._server_output())
            ready, error = self.endpoint.probe()
            if ready:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FatalError("server", "the server did not become ready within %g s (%s)" % (timeout_s, error),
                                 detail=self._server_output())
            self._sleep(min(delay, remaining))
            delay = min(delay * 1.5, 1.0)

    def server_dead(self) -> bool:
        if self._server_failure is not None:
            return True
        if self.server is not None:
            code = self.server.exit_code()
            if code is not None:
                self._server_failure = "the server %s during the run" % describe_exit(code)
                return True
        return False

    def check_server_after_failure(self) -> None:
        """A request lost its connection: find out whether the server is gone. Other request threads that
        fail meanwhile wait here for the answer instead of burning through the prompts."""
        if self.endpoint is None:
            return
        with self._probe_lock:
            if self.server_dead() or time.monotonic() - self._last_probe < 1.0:
                return
            ready, error = self.endpoint.probe()
            self._last_probe = time.monotonic()
            if ready:
                return
            if self.server is not None:
                # The process we started may be a wrapper (a shell) that outlives the server by a moment:
                # give it a second to exit, for the more telling message.
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and self.server.exit_code() is None:
                    time.sleep(0.05)
                if self.server_dead():
                    return
            self._server_failure = "the server at %s stopped answering (%s)" % (self.endpoint.base_url, error)

    def _report_server_failure(self, point: PointConfig) -> None:
        if self._server_failure_reported:
            return
        self._server_failure_reported = True
        fields = {"where": "server", "message": self._server_failure, "fatal": True,
                  "point": point.id}  # type: Dict[str, Any]
        if self.server is not None:
            time.sleep(0.3)  # let the server's last words reach server.log
            fields["detail"] = self._server_output()
        self.events.emit("error", **fields)

    # --- points ---

    def _run_points(self) -> None:
        for point in self.job.points:
            for repeat in range(point.repeats):
                self._check_cancel()
                if self.server_dead():
                    self._skip_point(point, repeat, "not run: %s" % self._server_failure)
                else:
                    self._run_point(point, repeat)

    def _skip_point(self, point: PointConfig, repeat: int, reason: str) -> None:
        self.events.emit("point", point=point.id, repeat=repeat, state="start")
        self.events.emit("point", point=point.id, repeat=repeat, state="end", status="error", requests=0,
                         errors=0, reason=reason)

    def _run_point(self, point: PointConfig, repeat: int) -> None:
        self.current_point = point.id
        self.events.emit("point", point=point.id, repeat=repeat, state="start")
        counts = PointCounts()
        status = "error"
        try:
            if not self._apply_cap(point, repeat):
                status = "error"
            elif point.workload.kind == "http":
                status = self._run_http_point(point, repeat, counts)
            else:
                status = self._run_command_point(point, repeat, counts)
        except Cancelled:
            status = "cancelled"
            raise
        finally:
            self.events.emit("point", point=point.id, repeat=repeat, state="end", status=status,
                             requests=counts.requests, errors=counts.errors)
            self.current_point = None

    def _apply_cap(self, point: PointConfig, repeat: int) -> bool:
        """Set this point's power cap (or put the originals back for an uncapped point after a capped one).
        Returns False, after an `error` event, if the cap cannot be set."""
        if point.power_cap_w is None:
            if self.caps.originals is not None:
                self._phase("cap", point, repeat)
                try:
                    self.events.emit("cap", action="restore", gpus=self.caps.restore(self.telemetry))
                except (TelemetryError, OSError) as e:
                    self.events.emit("error", where="cap", fatal=False, point=point.id,
                                     message="could not put the original power limits back: %s" % e)
                    return False
            return True
        self._phase("cap", point, repeat)
        watts = point.power_cap_w
        for i in self.gpu_indices:
            info = self.gpu_info[i]
            low, high = info.get("min_limit_w"), info.get("max_limit_w")
            if (low is not None and watts < low) or (high is not None and watts > high):
                allowed = "%s-%s W" % ("%g" % low if low is not None else "?", "%g" % high if high is not None else "?")
                self.events.emit("error", where="cap", fatal=False, point=point.id,
                                 message="power cap %g W is outside GPU %d's range %s" % (watts, i, allowed))
                return False
        try:
            changes = self.caps.apply(self.telemetry, self.gpu_indices, watts)
        except (TelemetryError, OSError) as e:
            self.events.emit("error", where="cap", fatal=False, point=point.id,
                             message="could not set the power cap to %g W: %s" % (watts, e))
            return False
        self.events.emit("cap", action="set", gpus=changes)
        return True

    def _outcome(self, stop_reason: Optional[str], point: PointConfig) -> str:
        if stop_reason is None and self.server_dead():
            stop_reason = "server"  # it died as the last requests were sent
        if stop_reason == "cancelled":
            raise Cancelled()
        if stop_reason == "server":
            self._report_server_failure(point)
            return "error"
        if stop_reason == "timeout":
            self.events.emit("log", level="warn", msg="point %s reached its time limit (%g s)"
                             % (point.id, point.workload.time_limit_s), source="agent")
            return "timeout"
        return "ok"

    def _run_http_point(self, point: PointConfig, repeat: int, counts: PointCounts) -> str:
        workload = point.workload
        warmups = workload.warmup_requests
        specs = build_request_specs(workload, warmups + workload.num_prompts)
        deadline = time.monotonic() + workload.time_limit_s if workload.time_limit_s else None
        runner = LoadRunner(self, self.endpoint, point, repeat, counts, deadline)
        self.load_runner = runner
        if warmups:
            self._phase("warmup", point, repeat)
            stop = runner.run(specs[:warmups], warmup=True, first_index=0)
            if stop:
                return self._outcome(stop, point)
        self._phase("measure", point, repeat)
        stop = runner.run(specs[warmups:], warmup=False, first_index=warmups)
        self._phase("cooldown", point, repeat)
        return self._outcome(stop, point)

    def _run_command_point(self, point: PointConfig, repeat: int, counts: PointCounts) -> str:
        workload = point.workload
        env = dict(os.environ)
        if self.job.server is not None:
            env.update(self.job.server.env)
        env.update({"WATTBENCH_POINT": point.id, "WATTBENCH_RUN_DIR": self.run_dir})
        if self.endpoint is not None:
            env.update({"WATTBENCH_BASE_URL": self.endpoint.base_url, "WATTBENCH_MODEL": self.endpoint.model})
        log_path = os.path.join(self.run_dir, "workload.log")
        deadline = time.monotonic() + workload.time_limit_s if workload.time_limit_s else None
        self._phase("measure", point, repeat)
        log_file = open(log_path, "ab")
        try:
            process = ManagedProcess(workload.command, True, env, stdout=subprocess.PIPE, stderr=log_file,
                                     cwd=self.job.dir)
        except OSError as e:
            log_file.close()
            self.events.emit("error", where="workload", fatal=False, point=point.id,
                             message="could not start the workload command: %s" % e)
            return "error"
        reader = threading.Thread(target=self._read_workload_output, name="workload-output",
                                  args=(process, log_file, point, repeat, counts), daemon=True)
        reader.start()
        stop = None
        while process.exit_code() is None:
            if self.cancel.is_set():
                stop = "cancelled"
            elif deadline is not None and time.monotonic() >= deadline:
                stop = "timeout"
            elif self.server_dead():
                stop = "server"
            if stop:
                process.stop()
                break
            self.cancel.wait(0.2)  # a cancel wakes this at once; the rest can wait a moment
        reader.join(timeout=5)
        log_file.close()
        self._phase("cooldown", point, repeat)
        code = process.exit_code()
        if stop is None and code != 0:
            self.events.emit("error", where="workload", fatal=False, point=point.id,
                             message="the workload command %s" % describe_exit(code),
                             detail="\n".join(tail_lines(log_path, SERVER_LOG_TAIL_LINES)))
            return "error"
        return self._outcome(stop, point)

    def _read_workload_output(self, process: ManagedProcess, log_file: Any, point: PointConfig, repeat: int,
                              counts: PointCounts) -> None:
        """`WATTBENCH {json}` lines become `request` events; everything else goes to workload.log."""
        index = 0
        for raw in process.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.startswith("WATTBENCH "):
                log_file.write(raw)
                log_file.flush()
                continue
            try:
                record = json.loads(line[len("WATTBENCH "):])
                if not isinstance(record, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as e:
                self.events.emit("log", level="warn", source="agent",
                                 msg="workload line is not WATTBENCH {json}: %s (%s)" % (line[:200], e))
                continue
            self.events.emit("request", **workload_request_event(record, point.id, repeat, index))
            index += 1
            counts.requests += 1
            if record.get("ok") is False or record.get("error"):
                counts.errors += 1


def workload_request_event(record: Dict[str, Any], point_id: str, repeat: int, index: int) -> Dict[str, Any]:
    """A `request` event from a command workload's `WATTBENCH {...}` line (missing fields are inferred)."""
    latency = record.get("latency_s")
    t_end = record.get("t_end", time.time())
    t_start = record.get("t_start", t_end - latency if isinstance(latency, (int, float)) else t_end)
    ok = record.get("ok", not record.get("error"))
    event = {
        "point": point_id, "repeat": repeat, "i": record.get("i", index), "ok": bool(ok),
        "warmup": bool(record.get("warmup", False)), "t_start": t_start, "t_end": t_end,
        "prompt_tokens": record.get("prompt_tokens"), "output_tokens": record.get("output_tokens"),
        "ttft_s": record.get("ttft_s"),
        "latency_s": latency if latency is not None else t_end - t_start,
        "itl_s": record.get("itl_s") or [],
    }  # type: Dict[str, Any]
    if record.get("error"):
        event["error"] = str(record["error"])
    return event


def hello_fields(telemetry: Telemetry, run_id: Optional[str], gpus: List[Dict[str, Any]], interval_s: float,
                 simulated: bool) -> Dict[str, Any]:
    return {
        "run_id": run_id, "host": socket.gethostname(), "agent_version": AGENT_VERSION,
        "python": platform.python_version(), "pid": os.getpid(), "pgid": os.getpgid(0),
        "driver": telemetry.driver, "telemetry": {"source": telemetry.source, "interval_s": interval_s,
                      "power_reading": getattr(telemetry, "power_reading", "instant")},
        "simulated": simulated,
        "capabilities": telemetry.capabilities + ["http_load", "command_load", "sim_server"],
        "gpus": gpus,
    }


# ----------------------------------------------------------------------------------------------------
# sim-server: a stand-in OpenAI-compatible LLM server
# ----------------------------------------------------------------------------------------------------

SIM_MAX_BATCH = 256  # like vLLM's default max_num_seqs


class SimSequence:
    """One request inside the simulated engine; the HTTP handler reads its tokens from `out`."""

    def __init__(self, number: int, prompt_tokens: int, target_tokens: int) -> None:
        self.number = number
        self.prompt_tokens = prompt_tokens
        self.target_tokens = target_tokens
        self.generated = 0
        self.cancelled = False  # the client went away
        self.out = queue.Queue()  # type: queue.Queue


class SimEngine(threading.Thread):
    """Continuous-batching scheduler timed by the SimProfile (docs/protocol.md), one step at a time:
    a prefill step of everything waiting when the batch has room, else a decode step of the running
    batch. Each step sets the simulated GPUs' power in the sim directory; a power limit below the
    demanded power caps the power and stretches the step."""

    def __init__(self, profile: Dict[str, Any], hardware: SimHardware, seed: int) -> None:
        super().__init__(name="sim-engine", daemon=True)
        self.profile = profile
        self.hardware = hardware
        self.gpu = profile["gpu"]
        self._cond = threading.Condition()
        self._waiting = collections.deque()  # type: collections.deque
        self._running = []  # type: List[SimSequence]
        self._stopping = False
        self._lengths = random.Random(seed)  # output lengths when not ignore_eos
        self._noise = random.Random(profile["noise"]["seed"])
        self._last_power = None  # type: Optional[Tuple[float, List[float]]]
        self._count = 0

    def submit(self, prompt_tokens: int, max_tokens: int, ignore_eos: bool) -> SimSequence:
        with self._cond:
            target = max_tokens if ignore_eos else self._lengths.randint(1, max_tokens)
            self._count += 1
            sequence = SimSequence(self._count, max(1, prompt_tokens), target)
            self._waiting.append(sequence)
            self._cond.notify()
            return sequence

    def _set_power(self, util: float) -> float:
        """Called with _cond held. Records the GPUs' power for utilisation `util`; returns how much the
        power limits stretch a step (1.0 when no limit bites)."""
        idle, tdp = self.gpu["idle_w"], self.gpu["tdp_w"]
        demand = idle + util * (tdp - idle)
        limits = self.hardware.limits()
        powers = [min(demand, limit) for limit in limits]
        if self._last_power != (util, powers):
            self.hardware.append_power(util, powers)
            self._last_power = (util, powers)
        tightest = min(limits)
        if tightest >= demand:
            return 1.0
        # The GPUs run in lock-step (tensor parallel): the most tightly capped one sets the pace.
        return ((demand - idle) / max(tightest - idle, 1e-6)) ** self.profile["cap"]["time_exponent"]

    def _next_step(self) -> Optional[Tuple[str, List[SimSequence], float, float]]:
        """(kind, sequences, uncapped duration, utilisation) of the next step, or None when idle."""
        self._waiting = collections.deque(s for s in self._waiting if not s.cancelled)
        self._running = [s for s in self._running if not s.cancelled]
        if self._waiting and len(self._running) < SIM_MAX_BATCH:
            room = SIM_MAX_BATCH - len(self._running)
            batch = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            prefill = self.profile["prefill"]
            tokens = sum(s.prompt_tokens for s in batch)
            return "prefill", batch, prefill["fixed_s"] + tokens * prefill["s_per_token"], prefill["util"]
        if self._running:
            decode = self.profile["decode"]
            size = len(self._running)
            context = sum(s.prompt_tokens + s.generated for s in self._running)
            duration = decode["fixed_s"] + size * decode["s_per_seq"] + context * decode["s_per_ctx_token"]
            util = min(decode["util_max"], decode["util_base"] + decode["util_per_seq"] * size)
            return "decode", list(self._running), duration, util
        return None

    def run(self) -> None:
        while True:
            with self._cond:
                step = self._next_step()
                while step is None and not self._stopping:
                    self._set_power(0.0)  # nothing queued: idle power, no steps
                    self._cond.wait()
                    step = self._next_step()
                if self._stopping:
                    return
                kind, sequences, duration, util = step
                duration *= self._set_power(util)
                start = time.monotonic()
            rel_std = self.profile["noise"]["rel_std"]
            if rel_std > 0:
                duration *= max(0.0, 1.0 + self._noise.gauss(0.0, rel_std))
            remaining = start + duration - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            with self._cond:
                if kind == "prefill":
                    self._running.extend(sequences)  # a prefill step also yields each first token
                for sequence in sequences:
                    if sequence.cancelled:
                        continue
                    sequence.generated += 1
                    sequence.out.put(1)
                    if sequence.generated >= sequence.target_tokens:
                        sequence.out.put(None)
                        self._running.remove(sequence)

    def shutdown(self) -> None:
        """Stop stepping and leave the simulated GPUs idle (called on SIGTERM)."""
        with self._cond:
            self._stopping = True
            idle = self.gpu["idle_w"]
            self.hardware.append_power(0.0, [min(idle, limit) for limit in self.hardware.limits()])
            self._cond.notify_all()


def _count_words(value: Any) -> int:
    """Prompt length as the simulated server counts it: whitespace-separated words."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)  # a prompt given as token ids
        return sum(_count_words(v) for v in value)
    if isinstance(value, dict):
        return _count_words(value.get("content") if "content" in value else value.get("text"))
    return 0


class SimHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    engine = None  # type: SimEngine
    model_name = "sim-model"


class SimHandler(http.server.BaseHTTPRequestHandler):
    server_version = "wattbench-sim/" + AGENT_VERSION
    protocol_version = "HTTP/1.0"  # one request per connection; a streamed body ends when the socket closes
    server = None  # type: SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: it would grow server.log by a line per request

    def _send_json(self, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{
                "id": self.server.model_name, "object": "model", "created": int(time.time()),
                "owned_by": "wattbench-sim"}]})
        elif path in ("/health", "/v1/health"):
            self._send_json(200, {"status": "ok", "simulated": True})
        else:
            self._error(404, "not found: %s" % self.path)

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/completions", "/v1/chat/completions"):
            self._error(404, "not found: %s" % self.path)
            return
        chat = path.endswith("/chat/completions")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object")
        except ValueError as e:
            self._error(400, "invalid JSON body: %s" % e)
            return
        prompt_tokens = _count_words(request.get("messages") if chat else request.get("prompt"))
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or (256 if chat else 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            self._error(400, "max_tokens must be a positive integer")
            return
        sequence = self.server.engine.submit(prompt_tokens, max_tokens, bool(request.get("ignore_eos")))
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            self._stream(sequence, chat, max_tokens, include_usage)
        else:
            self._complete(sequence, chat, max_tokens)

    def _word(self, sequence: SimSequence, position: int) -> str:
        return " " + WORDS[(sequence.number * 7 + position * 13) % len(WORDS)]

    def _tokens(self, sequence: SimSequence) -> Iterator[int]:
        position = 0
        while True:
            item = sequence.out.get()
            if item is None:
                return
            yield position
            position += 1

    def _usage(self, sequence: SimSequence) -> Dict[str, int]:
        return {"prompt_tokens": sequence.prompt_tokens, "completion_tokens": sequence.generated,
                "total_tokens": sequence.prompt_tokens + sequence.generated}

    def _stream(self, sequence: SimSequence, chat: bool, max_tokens: int, include_usage: bool) -> None:
        ident = "%s-sim-%d" % ("chatcmpl" if chat else "cmpl", sequence.number)
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        model = self.server.model_name

        def chunk(choices: List[Dict[str, Any]], usage: Optional[Dict[str, int]] = None) -> bytes:
            body = {"id": ident, "object": obj, "created": created, "model": model,
                    "choices": choices}  # type: Dict[str, Any]
            if usage is not None:
                body["usage"] = usage
            return ("data: %s\n\n" % json.dumps(body)).encode("utf-8")

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            if chat:
                self.wfile.write(chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]))
            for position in self._tokens(sequence):
                word = self._word(sequence, position)
                choice = ({"index": 0, "delta": {"content": word}, "finish_reason": None} if chat
                          else {"index": 0, "text": word, "logprobs": None, "finish_reason": None})
                self.wfile.write(chunk([choice]))
                self.wfile.flush()
            finish = "length" if sequence.generated >= max_tokens else "stop"
            final = ({"index": 0, "delta": {}, "finish_reason": finish} if chat
                     else {"index": 0, "text": "", "logprobs": None, "finish_reason": finish})
            self.wfile.write(chunk([final]))
            if include_usage:
                self.wfile.write(chunk([], self._usage(sequence)))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (OSError, ValueError):
            sequence.cancelled = True  # the client hung up: the engine drops the sequence

    def _complete(self, sequence: SimSequence, chat: bool, max_tokens: int) -> None:
        text = "".join(self._word(sequence, position) for position in self._tokens(sequence))
        finish = "length" if sequence.generated >= max_tokens else "stop"
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        try:
            self._send_json(200, {"id": "cmpl-sim-%d" % sequence.number,
                                  "object": "chat.completion" if chat else "text_completion",
                                  "created": int(time.time()), "model": self.server.model_name,
                                  "choices": [choice], "usage": self._usage(sequence)})
        except OSError:
            pass


def cmd_sim_server(args: argparse.Namespace) -> int:
    try:
        profile = parse_sim_profile(read_json_file(args.profile), "profile")
    except (OSError, ValueError, JobError) as e:
        print("sim-server: bad profile %s: %s" % (args.profile, e), file=sys.stderr)
        return 2
    hardware = SimHardware(os.path.abspath(args.sim_dir or default_sim_dir()), profile)
    engine = SimEngine(profile, hardware, args.seed)
    try:
        server = SimHTTPServer((args.host, args.port), SimHandler)
    except OSError as e:
        print("sim-server: cannot listen on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 2
    server.engine = engine
    server.model_name = args.model
    engine.start()

    def on_signal(signum: int, frame: Any) -> None:
        engine.shutdown()
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gpu = profile["gpu"]
    print("wattbench sim-server %s: SIMULATED OpenAI-compatible LLM server (no model, no GPU) on "
          "http://%s:%d/v1, model %r, %d x %s, sim dir %s"
          % (AGENT_VERSION, args.host, server.server_address[1], args.model, gpu["count"], gpu["name"],
             hardware.dir), flush=True)
    server.serve_forever(poll_interval=0.5)
    return 0


def cmd_sim_truth(args: argparse.Namespace) -> int:
    """Ground truth: the simulated GPUs' energy over [from, to], from the same arithmetic as the counter."""
    path = os.path.join(args.sim_dir or default_sim_dir(), "power.log")
    try:
        log = SimPowerLog(path, keep_history=True)
    except OSError as e:
        print("sim-truth: %s" % e, file=sys.stderr)
        return 2
    log.refresh()
    start, end = log.energy_at(args.t_from), log.energy_at(args.t_to)
    print(json.dumps({"from": args.t_from, "to": args.t_to, "gpus": [
        {"i": i, "energy_j": end[i] - start[i], "e_from_j": start[i], "e_to_j": end[i]}
        for i in range(len(start))]}))
    return 0


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def prepare_run_dir(run_dir: str) -> None:
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "events.ndjson"), "ab"):
        pass


def write_pid_file(path: str, pid: int) -> None:
    """Atomically: a detached start writes the file twice (the forking parent and the agent itself), and a
    reader must never see it truncated."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % pid)
    os.replace(tmp, path)


def run_agent(job_path: str, run_dir: str, sim_dir: Optional[str], mirror_stdout: bool,
              signals: Tuple[int, ...]) -> int:
    diag = DiagLog(os.path.join(run_dir, "agent.log"))
    diag.write("agent %s (python %s) starting" % (AGENT_VERSION, platform.python_version()))
    events = EventWriter(os.path.join(run_dir, "events.ndjson"), mirror_stdout)
    try:
        write_pid_file(os.path.join(run_dir, "agent.pid"), os.getpid())
        agent = AgentRun(job_path, run_dir, sim_dir, events, diag)
        agent.install_signal_handlers(signals)
        return agent.execute()
    finally:
        events.close()


def detach_and_run(job_path: str, run_dir: str, sim_dir: Optional[str]) -> int:
    """Double fork into a new session so the agent outlives the SSH connection; the parent returns once
    DIR/agent.pid names the agent."""
    pid_path = os.path.join(run_dir, "agent.pid")
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child > 0:
        os.waitpid(child, 0)
        with open(pid_path) as f:
            pid = int(f.read().strip())
        print(json.dumps({"pid": pid, "run_dir": run_dir}))
        return 0
    os.setsid()
    grandchild = os.fork()
    if grandchild > 0:
        write_pid_file(pid_path, grandchild)
        os._exit(0)
    os.setpgid(0, 0)  # lead a process group of its own, so `kill -TERM -PGID` reaches exactly the agent
    # The agent itself: no terminal, stdout to nowhere (events.ndjson has everything), stderr to agent.log.
    devnull = os.open(os.devnull, os.O_RDWR)
    log_fd = os.open(os.path.join(run_dir, "agent.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(log_fd, 2)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = 1
    try:
        code = run_agent(job_path, run_dir, sim_dir, mirror_stdout=False, signals=(signal.SIGTERM, signal.SIGINT))
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def cmd_run(args: argparse.Namespace) -> int:
    run_dir = os.path.abspath(args.run_dir)
    job_path = os.path.abspath(args.job)
    try:
        prepare_run_dir(run_dir)
    except OSError as e:
        message = "cannot write the run directory %s: %s" % (run_dir, e.strerror or e)
        print("wattbench agent: %s" % message, file=sys.stderr)
        print(json.dumps({"v": PROTOCOL_VERSION, "seq": 0, "t": time.time(), "type": "error", "where": "run_dir",
                          "message": message, "fatal": True}))
        return 2
    if args.detach:
        return detach_and_run(job_path, run_dir, args.sim_dir)
    # Attached to a terminal or an SSH channel: a hang-up cancels like SIGTERM, so limits are restored.
    return run_agent(job_path, run_dir, args.sim_dir, mirror_stdout=True,
                     signals=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP))


def cmd_sample(args: argparse.Namespace) -> int:
    """Samples this node's GPUs for a run whose benchmark runs elsewhere (the other nodes of a Slurm
    allocation): `hello`, `sample` events, and `done` once the run in --until-done has ended (or on
    SIGTERM/SIGINT). The same job file as the run, so the same telemetry settings."""
    run_dir = os.path.abspath(args.run_dir)
    prepare_run_dir(run_dir)
    events = EventWriter(os.path.join(run_dir, "events.ndjson"), mirror_stdout=False)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    status = "ok"
    telemetry = None
    sampler = None
    try:
        job = load_job(os.path.abspath(args.job))
        telemetry = open_telemetry(job.telemetry.source, job.sim, os.path.abspath(args.sim_dir or default_sim_dir()))
        available = sorted(g["index"] for g in telemetry.gpus())
        indices = list(job.gpu_indices) if job.gpu_indices is not None else available[:job.gpu_count or len(available)]
        info = {g["index"]: g for g in telemetry.gpus()}
        simulated = telemetry.simulated or bool(job.server and job.server.sim)
        events.emit("hello", **hello_fields(telemetry, job.run_id, [info[i] for i in indices if i in info],
                                            job.telemetry.interval_s, simulated))
        sampler = Sampler(telemetry, indices, job.telemetry.interval_s, events, lambda: None)
        telemetry.start(job.telemetry.interval_s)
        sampler.start()
        state_path = os.path.join(os.path.abspath(args.until_done), "state.json") if args.until_done else None
        while not stop.wait(0.5):
            if state_path:
                try:
                    if read_json_file(state_path).get("status") not in (None, "running"):
                        break
                except (OSError, ValueError):
                    pass
        if stop.is_set():
            status = "cancelled"
    except (JobError, TelemetryUnavailable, OSError, ValueError) as e:
        events.emit("error", where="sample", message=str(e), fatal=True)
        status = "error"
    finally:
        if sampler is not None:
            sampler.stop()
        if telemetry is not None:
            telemetry.close()
        events.emit("done", status=status, caps_restored=True)
        events.close()
    return 0 if status != "error" else 1


def cmd_restore_caps(args: argparse.Namespace) -> int:
    result = restore_leftover_caps()
    print(json.dumps(result))
    return 1 if result["status"] == "failed" else 0


def cmd_probe(args: argparse.Namespace) -> int:
    events = EventWriter(None, mirror_stdout=True)
    profile = None
    if args.profile:
        try:
            profile = parse_sim_profile(read_json_file(args.profile), "profile")
        except (OSError, ValueError, JobError) as e:
            events.emit("error", where="probe", message="bad sim profile %s: %s" % (args.profile, e), fatal=True)
            return 1
    try:
        telemetry = open_telemetry(args.source, profile, args.sim_dir)
    except TelemetryUnavailable as e:
        fields = {"where": "telemetry", "message": str(e), "fatal": True}  # type: Dict[str, Any]
        if getattr(e, "detail", None):
            fields["detail"] = e.detail  # type: ignore[attr-defined]
        events.emit("error", **fields)
        return 1
    try:
        events.emit("hello", **hello_fields(telemetry, None, telemetry.gpus(), 0.1, telemetry.simulated))
    finally:
        telemetry.close()
    return 0


def cmd_list_runs(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root)
    try:
        names = sorted(os.listdir(root))
    except OSError as e:
        print("list-runs: cannot read %s: %s" % (root, e.strerror or e), file=sys.stderr)
        return 2
    for name in names:
        run_dir = os.path.join(root, name)
        state_path = os.path.join(run_dir, "state.json")
        pid_path = os.path.join(run_dir, "agent.pid")
        if not os.path.isdir(run_dir) or not (os.path.exists(state_path) or os.path.exists(pid_path)):
            continue
        state = {}  # type: Dict[str, Any]
        try:
            state = read_json_file(state_path)
        except (OSError, ValueError):
            pass
        pid = state.get("pid")
        if pid is None:
            try:
                with open(pid_path) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                pid = None
        alive = pid_alive(pid) and "wattbench" in _cmdline(pid)
        print(json.dumps({"run_id": state.get("run_id") or name, "run_dir": run_dir, "pid": pid, "alive": alive,
                          "status": state.get("status", "running" if alive else "unknown")}))
    return 0


def _cmdline(pid: Optional[int]) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except (OSError, TypeError):
        return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wattbench_agent.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=AGENT_VERSION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run a job file")
    run.add_argument("--job", required=True, help="the job file (JSON)")
    run.add_argument("--run-dir", required=True, help="where events.ndjson, state.json and logs go")
    run.add_argument("--detach", action="store_true", help="double-fork into a new session and return at once")
    run.add_argument("--sim-dir", help="simulated GPUs' state (default $WATTBENCH_SIM_DIR or $WATTBENCH_HOME/sim)")
    run.set_defaults(handler=cmd_run)

    sample = sub.add_parser("sample", help="only sample this node's GPUs (other nodes of a Slurm job)")
    sample.add_argument("--job", required=True, help="the run's job file (for the telemetry settings)")
    sample.add_argument("--run-dir", required=True, help="where this node's events.ndjson goes")
    sample.add_argument("--until-done", help="stop once the run in this directory has ended (its state.json)")
    sample.add_argument("--sim-dir")
    sample.set_defaults(handler=cmd_sample)

    restore = sub.add_parser("restore-caps", help="restore power limits left by an agent that died hard")
    restore.set_defaults(handler=cmd_restore_caps)

    probe = sub.add_parser("probe", help="print one hello event describing the GPUs and exit")
    probe.add_argument("--source", default="auto", choices=TELEMETRY_SOURCES)
    probe.add_argument("--profile", help="SimProfile JSON for --source sim")
    probe.add_argument("--sim-dir")
    probe.set_defaults(handler=cmd_probe)

    sim = sub.add_parser("sim-server", help="run the simulated OpenAI-compatible LLM server")
    sim.add_argument("--port", type=int, required=True)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--profile", required=True, help="SimProfile JSON")
    sim.add_argument("--sim-dir")
    sim.add_argument("--model", default="sim-model", help="the model name it answers to")
    sim.add_argument("--seed", type=int, default=1, help="seed of the output lengths when ignore_eos is off")
    sim.set_defaults(handler=cmd_sim_server)

    truth = sub.add_parser("sim-truth", help="ground-truth energy of the simulated GPUs over a time window")
    truth.add_argument("--sim-dir")
    truth.add_argument("--from", dest="t_from", type=float, required=True, help="epoch seconds")
    truth.add_argument("--to", dest="t_to", type=float, required=True, help="epoch seconds")
    truth.set_defaults(handler=cmd_sim_truth)

    runs = sub.add_parser("list-runs", help="one JSON line per run directory under --root")
    runs.add_argument("--root", required=True)
    runs.set_defaults(handler=cmd_list_runs)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
