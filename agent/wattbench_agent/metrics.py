"""The inference engine's own metrics: a parser of the Prometheus text format (exposition format 0.0.4) and
a scraper thread that reads the engine's `/metrics` every interval and writes one `engine` event per scrape
(running and waiting requests, KV-cache usage, preemptions), under names that are the same for every engine.

The scraper never fails the run: a scrape that fails is said once (a `log` warning) and tried again."""

import http.client
import math
import re
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

MIN_INTERVAL_S = 0.5  # an engine renders every series per scrape: more often costs it more than it tells
SCRAPE_TIMEOUT_S = 5.0
MAX_BODY_BYTES = 32 * 1024 * 1024  # a histogram-heavy vLLM with many LoRA adapters stays far below this

# Series of one tensor-parallel group carry the same scheduler state once per rank (SGLang labels them
# tp_rank): they are one value, not one per rank.
RANK_LABELS = ("tp_rank",)

# How a normalised value combines the series it was read from (data-parallel engines, several models):
# counts add up, a usage ratio is the mean over the engines' caches.
MEAN_VALUES = ("kv_cache_usage",)


class Sample(NamedTuple):
    name: str
    labels: Dict[str, str]
    value: float
    timestamp_ms: Optional[int]


class ParseResult(NamedTuple):
    samples: List[Sample]
    types: Dict[str, str]  # metric family -> counter | gauge | histogram | summary | untyped
    bad_lines: List[int]  # 1-based numbers of lines that are not valid exposition format


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_NAME_RE = re.compile(_NAME)
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*')
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), value)


def parse_value(text: str) -> float:
    """A sample value as Prometheus writes it: a Go float, including NaN, +Inf and -Inf."""
    lowered = text.lower()
    if lowered in ("nan", "+inf", "-inf", "inf"):
        return float(lowered)
    if not re.match(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", text):
        raise ValueError("not a number: %r" % text)
    return float(text)


def _parse_sample(line: str) -> Sample:
    match = _NAME_RE.match(line)
    if not match:
        raise ValueError("no metric name")
    name = match.group(0)
    rest = line[match.end():]
    labels = {}  # type: Dict[str, str]
    if rest.startswith("{"):
        pos = 1
        while True:
            while pos < len(rest) and rest[pos] in " \t":
                pos += 1
            if pos < len(rest) and rest[pos] == "}":
                pos += 1
                break
            label = _LABEL_RE.match(rest, pos)
            if not label:
                raise ValueError("bad label set")
            labels[label.group(1)] = _unescape(label.group(2))
            pos = label.end()
            if pos < len(rest) and rest[pos] == ",":
                pos += 1
            elif pos < len(rest) and rest[pos] == "}":
                pos += 1
                break
            else:
                raise ValueError("bad label set")
        rest = rest[pos:]
    elif rest and rest[0] not in " \t":
        raise ValueError("bad metric name")
    fields = rest.split()
    if len(fields) not in (1, 2):
        raise ValueError("expected a value and an optional timestamp")
    timestamp = int(fields[1]) if len(fields) == 2 else None
    return Sample(name, labels, parse_value(fields[0]), timestamp)


def _family(name: str, types: Dict[str, str]) -> Optional[str]:
    """The histogram or summary family a series belongs to, or None."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    if types.get(name) == "summary":
        return name  # a summary's quantile series carry the family's own name
    return None


def parse_text(text: str, histograms: bool = False) -> ParseResult:
    """Every sample of a text-format exposition. The series of histograms and summaries (`_bucket`, `_sum`,
    `_count`, quantiles) are left out unless `histograms`; a `_bucket` series with an `le` label counts as a
    histogram's even without its `# TYPE` line (an excerpt may lack it). Lines that are not valid are
    skipped and listed in `bad_lines`, so one odd line does not hide the rest."""
    samples = []  # type: List[Sample]
    types = {}  # type: Dict[str, str]
    bad = []  # type: List[int]
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].split(None, 3)
            if len(parts) >= 3 and parts[0] == "TYPE":
                types[parts[1]] = parts[2]
            continue  # HELP, or a comment
        try:
            sample = _parse_sample(line)
        except ValueError:
            bad.append(number)
            continue
        if not histograms and (_family(sample.name, types) is not None
                               or (sample.name.endswith("_bucket") and "le" in sample.labels)):
            continue
        samples.append(sample)
    return ParseResult(samples, types, bad)


# --- from samples to the `engine` event's values ---

MetricSpec = Dict[str, List[str]]  # normalised name -> the engine's metric names, the first one present wins


def _without_rank_duplicates(series: List[Sample]) -> List[Sample]:
    groups = {}  # type: Dict[Tuple[Tuple[str, str], ...], Sample]
    for sample in series:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in RANK_LABELS))
        kept = groups.get(key)
        if kept is None or (not math.isnan(sample.value) and (math.isnan(kept.value) or sample.value > kept.value)):
            groups[key] = sample
    return list(groups.values())


def engine_values(samples: List[Sample], spec: MetricSpec, model: Optional[str] = None) -> Dict[str, float]:
    """The normalised values of one scrape. For each name of `spec`, the series of the first engine metric
    present; where some carry `model_name` equal to `model`, only those (another model's load is not this
    run's); series of one tensor-parallel group counted once; then summed over the rest of the label sets
    (data-parallel engines), except a usage ratio, which is their mean. NaN series are left out."""
    by_name = {}  # type: Dict[str, List[Sample]]
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    values = {}  # type: Dict[str, float]
    for key, names in spec.items():
        series = next((by_name[n] for n in names if n in by_name), None)
        if series is None:
            continue
        if model is not None:
            mine = [s for s in series if s.labels.get("model_name") == model]
            series = mine or series
        finite = [s.value for s in _without_rank_duplicates(series) if not math.isnan(s.value)]
        if not finite:
            continue
        total = sum(finite)
        values[key] = total / len(finite) if key in MEAN_VALUES else total
    return values


# --- the scraper ---

class Scraper(threading.Thread):
    """GETs `url` every `interval_s` (at least MIN_INTERVAL_S) and emits `engine` events with the values of
    `spec`. Errors never leave the thread: the first failure of a kind is a `log` warning, the recovery an
    `info`; scrapes go on until `stop()`."""

    def __init__(self, url: str, spec: MetricSpec, interval_s: float, emit: Callable[..., Any],
                 current_point: Callable[[], Optional[str]], model: Optional[str] = None) -> None:
        super().__init__(name="engine-metrics", daemon=True)
        self.url = url
        self.spec = spec
        self.interval_s = max(MIN_INTERVAL_S, interval_s)
        self.emit = emit
        self.current_point = current_point
        self.model = model
        self.scrapes = 0
        self.failures = 0
        self._stop_event = threading.Event()
        self._failing = None  # type: Optional[str]
        self._warned = set()  # type: Set[str]
        self._said_missing = False
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + ("?" + parts.query if parts.query else "")

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop_event.is_set():
            try:
                self.scrape_once()
            except Exception as e:  # a bug here must not end the run's measurement, nor go unsaid
                self._failed("internal", "engine metrics scrape failed: %s: %s" % (type(e).__name__, e))
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:
                next_tick = now
            self._stop_event.wait(next_tick - now)

    def _get(self) -> str:
        timeout = min(SCRAPE_TIMEOUT_S, max(1.0, self.interval_s * 2))
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=ssl.create_default_context())  # type: http.client.HTTPConnection
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request("GET", self._path, headers={"Accept": "text/plain"})
            response = conn.getresponse()
            body = response.read(MAX_BODY_BYTES + 1)
            if response.status != 200:
                raise ScrapeError("http-%d" % response.status, "GET %s answered HTTP %d%s" % (
                    self.url, response.status, " (does the engine export metrics? e.g. SGLang needs "
                    "--enable-metrics, llama-server --metrics)" if response.status == 404 else ""))
            if len(body) > MAX_BODY_BYTES:
                raise ScrapeError("too-large", "GET %s answered more than %d MiB" % (self.url, MAX_BODY_BYTES >> 20))
            return body.decode("utf-8", "replace")
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            raise ScrapeError("connect", "GET %s: %s" % (self.url, e or type(e).__name__))
        finally:
            conn.close()

    def scrape_once(self) -> Optional[Dict[str, float]]:
        """One scrape: the `engine` event's values (None when the scrape failed or found none of them)."""
        t = time.time()
        try:
            text = self._get()
        except ScrapeError as e:
            self._failed(e.kind, e.message)
            return None
        self.scrapes += 1
        values = engine_values(parse_text(text).samples, self.spec, self.model)
        if self._failing is not None:
            self._failing = None
            self.emit("log", level="info", msg="engine metrics from %s are back" % self.url, source="agent")
        if not values:
            if not self._said_missing:
                self._said_missing = True
                wanted = ", ".join(n for names in self.spec.values() for n in names)
                self.emit("log", level="warn", source="agent",
                          msg="%s answered, but with none of the engine metrics expected (%s); no engine "
                              "events until it does" % (self.url, wanted))
            return None
        fields = {"values": values}  # type: Dict[str, Any]
        point = self.current_point()
        if point is not None:
            fields["point"] = point
        self.emit("engine", t=t, **fields)
        return values

    def _failed(self, kind: str, message: str) -> None:
        self.failures += 1
        self._failing = kind
        if kind in self._warned:
            return
        self._warned.add(kind)
        self.emit("log", level="warn", source="agent",
                  msg="%s; the engine metrics are left out while it fails, and tried again every %g s"
                      % (message, self.interval_s))


class ScrapeError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
