"""The job file: parsed and validated into dataclasses, every error naming its field; dataset files;
the SimProfile of the simulated GPUs and server."""

import json
import math
import os
import random
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .version import PROTOCOL_VERSION


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
    kind: str  # http | command | tool
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
    top_p: Optional[float] = None  # nucleus sampling; sent only when the job sets it
    client_processes: Optional[int] = None  # load processes (workers.processes_for); None: chosen per point
    tool: Optional[str] = None  # kind == tool: vllm-bench | guidellm | aiperf
    tool_args: List[str] = field(default_factory=list)  # the tool's own arguments, after those the agent sets


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
    # merged into every request body (an engine preset, e.g. {"ignore_eos": true} for vLLM); None: the
    # workload's ignore_eos decides
    request_fields: Optional[Dict[str, Any]] = None
    # the engine preset's readiness paths, tried in order ("/health": from the server's root; "models":
    # relative to base_url); None: base_url/models, then /health
    probe_paths: Optional[List[str]] = None
    metrics_url: Optional[str] = None  # the engine's Prometheus metrics, scraped into `engine` events
    metrics: Dict[str, List[str]] = field(default_factory=dict)  # normalised name -> engine metric names
    # the name of an environment variable on the host holding the API key, sent as `Authorization: Bearer`
    # (a hosted API); the key itself is never in the job
    api_key_env: Optional[str] = None


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
    kind = fields.string("kind", "http", choices=("http", "command", "tool"))
    time_limit = fields.number("time_limit_s", None, above=0)
    seed = fields.integer("seed", 0)
    if kind == "command":
        command = fields.string("command")
        if not command.strip():
            raise fields.error("command", "is empty")
        return WorkloadConfig("command", None, 0, 0, None, None, 0, 0.0, False, time_limit, seed, command)
    if kind == "tool":
        tool = fields.string("tool", choices=("vllm-bench", "guidellm", "aiperf"))
        args = fields.data.get("tool_args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise fields.error("tool_args", "must be a list of strings")
        return WorkloadConfig("tool", None, 0, 0, None, None, 0, 0.0, False, time_limit, seed, None,
                              tool=tool, tool_args=list(args))
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
        top_p=fields.number("top_p", None, above=0, maximum=1),
        client_processes=fields.integer("client_processes", None, minimum=1),
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
    request_fields = fields.raw("request_fields", None)
    if request_fields is not None and not isinstance(request_fields, dict):
        raise fields.error("request_fields", "expected an object of request body fields, got %s"
                           % _describe_value(request_fields))
    probe_paths = fields.array("probe_paths", None)
    if probe_paths is not None and (not probe_paths or not all(isinstance(p, str) and p for p in probe_paths)):
        raise fields.error("probe_paths", "expected a list of paths such as [\"/health\", \"models\"]")
    metrics_url = fields.string("metrics_url", None)
    if metrics_url is not None:
        parts = urllib.parse.urlsplit(metrics_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise fields.error("metrics_url", "expected an http(s) URL such as http://127.0.0.1:8000/metrics, got %s"
                               % _describe_value(metrics_url))
    metrics = fields.raw("metrics", {})
    if not isinstance(metrics, dict) or not all(
            isinstance(names, list) and names and all(isinstance(n, str) for n in names) for names in metrics.values()):
        raise fields.error("metrics", "expected an object of name: [engine metric names], e.g. "
                                      "{\"running\": [\"vllm:num_requests_running\"]}")
    return ServerConfig(
        sim=sim,
        command=command,
        base_url=base_url,
        api=fields.string("api", "completions", choices=("completions", "chat", "generate")),
        model=fields.string("model", "sim-model" if sim else _MISSING),
        ready_timeout_s=fields.number("ready_timeout_s", 600.0, above=0),
        env={str(k): str(v) for k, v in env.items()},
        request_fields=request_fields,
        probe_paths=probe_paths,
        metrics_url=metrics_url,
        metrics={str(k): list(v) for k, v in metrics.items()},
        api_key_env=fields.string("api_key_env", None),
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
        if workload.kind in ("http", "tool") and server is None:
            raise p.error("workload.kind", "an %s workload needs a server: set server.base_url, server.command "
                                           "or server.sim" % workload.kind)
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
