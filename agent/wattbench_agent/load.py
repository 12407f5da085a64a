"""Load generation against an OpenAI-compatible server: streamed requests timed token by token, at a fixed
concurrency or a Poisson request rate, all on one asyncio loop in a thread of its own (client.py sends
each request). The loop watches its own lateness, so a point it could not time faithfully says so."""

import asyncio
import collections
import gc
import random
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

from .client import (REQUEST_CONNECT_TIMEOUT_S, REQUEST_READ_TIMEOUT_S, PROBE_TIMEOUT_S,  # noqa: F401 (re-exported)
                     Endpoint, Feeder, StreamProtocol, Tracker, describe_request_error, parse_retry_after,
                     stream_request, stream_request_async)
from .job import PointConfig
from .prompts import RequestSpec
from .sse import one_line
from .stamped import direct_selector, run_loop
from .workers import WorkerPool, processes_for
from .util import now


THROTTLE_STATUSES = (429, 503)  # Too Many Requests, Service Unavailable: the server asks the client to wait


BACKOFF_BASE_S = 0.25  # without Retry-After: wait in [step/2, step], step = base * 2^(throttles in a row - 1)


BACKOFF_MAX_S = 8.0


RETRY_AFTER_MAX_S = 60.0  # a longer Retry-After is cut to this (and any wait to the point's time limit)


WATCH_PERIOD_S = 0.05  # how often the loop looks for a cancel, the time limit or a dead server


LAG_PERIOD_S = 0.01  # the lag monitor's timer: how late it fires is how late any read could be stamped


# The cyclic collector, run every 700 allocations, scans every object in the process when it reaches its
# oldest generation: at 2,048 streams a stall of 50-100 ms, every stream's reads waiting. During a point
# the objects from before it are frozen out of its scans and it runs every GC_THRESHOLD_0 allocations.
GC_THRESHOLD_0 = 20000


# A point is flagged `client_behind` when the loop's lateness reaches either: p99 5 ms is half of a 10 ms
# inter-token gap (100 tokens/s per stream), past which ITL tails are the client's; one stall of 50 ms
# delays every stream in flight by several tokens' time and shifts their TTFTs. With kernel stamps a late
# loop shifts no stamp: it spoils a figure only by reading two tokens of a stream at once, which takes a
# stall longer than the stream's gap. There the point is flagged when its loop stalled past
# STALL_LIMIT_MS (a 200 tokens/s stream's gap) and more than SHARED_READS_LIMIT of its tokens came in a
# shared read (each turns a gap into 0 and doubles the next; on the bench 0.5% of them moved ITL p99 by
# 2%, the target; the summary warns from 0.2%) or more than FIRST_SHARED_LIMIT of its requests had their
# first token read with the second (each such TTFT is late by a gap: past 1% of them, TTFT p99 is).
LAG_P99_LIMIT_MS = 5.0
LAG_MAX_LIMIT_MS = 50.0
STALL_LIMIT_MS = 5.0
SHARED_READS_LIMIT = 0.005
FIRST_SHARED_LIMIT = 0.01


# Request events are written by a task of their own, at most this long at a time before the loop reads
# again: when a wave of requests ends together (a concurrency point's requests all ask for the same
# max_tokens) their events cost 100-300 us each, and written inline 256 of them held every read ~70 ms.
WRITE_SLICE_S = 0.0005
# ... and while more are waiting, the writer pauses this long after a slice (the loop reads meanwhile), so a
# wave's events take at most a fifth of the loop until it is written; past WRITE_BACKLOG_MAX waiting events
# it writes without pauses, so the backlog (memory, the live view's delay) stays bounded whatever the rate.
# On a CPU-starved host (client, stand-in and a busy loop on one core, 256 streams) first tokens read with
# their second at the start of the second wave: 23 in three runs without pauses, 6 with.
WRITE_PAUSE_S = 0.002
WRITE_BACKLOG_MAX = 4096

# A concurrency point's first requests start this many per loop pass, the loop reading between passes:
# started all at once, 1,024 connections held every read 40-90 ms on the bench (one stream's gap at 20,000
# chunks/s is 51 ms: longer, and the first and second tokens come in one read); 16 at a time, about 20 ms.
START_BATCH = 16


def raise_open_file_limit() -> None:
    """Soft open-file limit up to the hard one: each stream in flight holds a socket (1024 is a common soft
    limit, 2048 streams are asked for)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536),
                                                        hard))
    except (ImportError, ValueError, OSError):
        pass


def quantile(values: List[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class PointCounts:
    """A point's measured requests (warm-up ones are not counted), for its `point` end event."""
    requests: int = 0
    errors: int = 0
    http: bool = False  # LoadRunner sent them (a command workload reports its own requests)
    tokens_usage: int = 0  # successful requests whose output tokens came from the server's usage report
    tokens_chunks: int = 0  # ... and those counted by chunks
    throttled: int = 0  # failed with HTTP 429 or 503 (the server throttled, or was unavailable)
    inflight_max: Optional[int] = None  # most measured requests in flight at once
    inflight_mean: Optional[float] = None  # ... on average over the measured window, weighted by time
    request_rate_achieved: Optional[float] = None  # request-rate points: requests sent per second
    client_lag_ms: Optional[Dict[str, float]] = None  # the load loop's lateness: p50, p99, max
    client_behind: Optional[bool] = None
    arrival_stamps: Optional[str] = None  # kernel | loop | mixed: how token arrivals were timed
    load_processes: Optional[int] = None  # processes that sent the requests (1: the agent's own loop)
    arrivals: int = 0  # token-carrying chunks of the measured requests ...
    shared_reads: int = 0  # ... and those read together with the chunk before (stream_parser.shared_reads)
    first_arrivals: int = 0  # measured requests with a token-carrying chunk ...
    first_shared: int = 0  # ... and those whose first came in the same read as the second (TTFT late by a gap)
    concurrency: Optional[int] = None  # what the point asked for, beside what was achieved ...
    request_rate: Optional[float] = None

    ARRIVAL_COUNTS = ("arrivals", "shared_reads", "first_arrivals", "first_shared")

    def count_arrivals(self, parser: Any) -> None:
        """A measured request's token arrivals (its StreamParser's), for the shares of shared reads."""
        self.arrivals += len(parser.arrivals)
        self.shared_reads += parser.shared_reads
        if parser.arrivals:
            self.first_arrivals += 1
            self.first_shared += parser.first_shared

    def arrival_counts(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in self.ARRIVAL_COUNTS}

    def add_arrival_counts(self, counts: Dict[str, Any]) -> None:
        """Another process's arrival_counts() into these."""
        for name in self.ARRIVAL_COUNTS:
            setattr(self, name, getattr(self, name) + int(counts.get(name) or 0))

    def end_fields(self) -> Dict[str, Any]:
        """Fields of the `point` end event beyond requests and errors (docs/protocol.md)."""
        fields = {}  # type: Dict[str, Any]
        if self.http:
            fields["throttled"] = self.throttled
        if self.http and (self.tokens_usage or self.tokens_chunks):
            fields["tokens_from"] = ("mixed" if self.tokens_usage and self.tokens_chunks
                                     else "usage" if self.tokens_usage else "chunks")
        if self.http and self.arrivals:
            fields["arrivals_shared_read"] = round(self.shared_reads / self.arrivals, 4)
        if self.http and self.first_arrivals:
            fields["first_tokens_shared_read"] = round(self.first_shared / self.first_arrivals, 4)
        for name in ("inflight_max", "inflight_mean", "request_rate_achieved", "client_lag_ms", "client_behind",
                     "arrival_stamps", "load_processes", "concurrency", "request_rate"):
            value = getattr(self, name)
            if self.http and value is not None:
                fields[name] = value
        return fields


STOP_TEXT = {"cancelled": "cancelled", "timeout": "point time limit reached", "server": "the server died"}


class LagMonitor:
    """A timer every LAG_PERIOD_S; how late each fires is the loop's lag (busy callbacks, the GIL held by
    another thread, the process not scheduled), the same delay any read callback would have seen."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lags = []  # type: List[float]
        self._due = 0.0
        self._handle = None  # type: Optional[asyncio.TimerHandle]

    def start(self) -> None:
        self._due = self.loop.time() + LAG_PERIOD_S
        self._handle = self.loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        t = self.loop.time()
        self.lags.append(max(0.0, t - self._due))
        self._due = t + LAG_PERIOD_S  # from now: one stall is one late tick, not a run of them
        self._handle = self.loop.call_at(self._due, self._tick)


class InFlight(Tracker):
    """Requests connected and not yet over: their protocols (to abort them) and the time-weighted count."""

    def __init__(self, runner: "LoadRunner") -> None:
        self.runner = runner
        self.protocols = set()  # type: Set[StreamProtocol]
        self.peak = 0
        self._area = 0.0
        self._since = None  # type: Optional[float]
        self._first = None  # type: Optional[float]

    def _step(self) -> None:
        t = time.monotonic()
        if self._since is not None:
            self._area += len(self.protocols) * (t - self._since)
        else:
            self._first = t
        self._since = t

    def opened(self, protocol: StreamProtocol) -> None:
        self._step()
        self.protocols.add(protocol)
        self.peak = max(self.peak, len(self.protocols))
        if self.runner._stop_reason is not None:
            protocol.abort(STOP_TEXT[self.runner._stop_reason])  # connected just as the stop came

    def closed(self, protocol: StreamProtocol) -> None:
        self._step()
        self.protocols.discard(protocol)

    def mean(self) -> Optional[float]:
        if self._first is None or self._since is None or self._since <= self._first:
            return None
        return self._area / (self._since - self._first)


class LoadRunner:
    """Sends requests to an OpenAI-compatible endpoint at a fixed concurrency or at a Poisson request
    rate, and writes a `request` event for each. Stops early on cancel, time limit or a dead server,
    aborting requests in flight (their events say why). `agent` is the run driving it (run.AgentRun, not
    imported here: the run imports this module): its `cancel` event, `events` writer, `server_dead()` and
    `check_server_after_failure()`.

    `run` starts one thread with one event loop; every request is a coroutine on it, so the configured
    concurrency is in flight at once and nothing is started one thread after another."""

    def __init__(self, agent: Any, endpoint: Endpoint, point: PointConfig, repeat: int,
                 counts: PointCounts, deadline: Optional[float], processes: Optional[int] = None) -> None:
        self.agent = agent
        self.endpoint = endpoint
        self.point = point
        self.workload = point.workload
        self.repeat = repeat
        self.counts = counts
        self.deadline = deadline
        self._stop_reason = None  # type: Optional[str]
        self._internal_errors = 0
        self._noted = set()  # type: set
        self._hold_until = 0.0  # monotonic: no new request before this (the server said 429/503)
        self._throttles_in_row = 0
        self._jitter = random.Random(self.workload.seed * 7919 + repeat)
        self._inflight = None  # type: Optional[InFlight]
        self._probe = None  # type: Optional[asyncio.Future]
        self._feeder = None  # type: Optional[Feeder]
        self._processes = processes  # None: workers.processes_for decides per run
        self._pool = None  # type: Optional[WorkerPool]
        self._lags = []  # type: List[float]
        self._rate_span = None  # type: Optional[Tuple[float, float, int]]
        self._unwritten = collections.deque()  # type: Deque[Tuple[Dict[str, Any], Any, bool]]
        self._writer_wake = None  # type: Optional[asyncio.Event]
        self._writer_closing = False

    def run(self, specs: List[RequestSpec], warmup: bool, first_index: int) -> Optional[str]:
        """Send `specs`; returns None when all were sent and answered, else why it stopped early."""
        return self.run_numbered(list(enumerate(specs, first_index)), warmup)

    def run_numbered(self, numbered: List[Tuple[int, RequestSpec]], warmup: bool,
                     schedule: Optional[Tuple[float, List[float]]] = None, report: bool = True) -> Optional[str]:
        """`run` on requests already numbered; `schedule`: (origin, offsets), the arrival times of a share
        of a request-rate point (a worker's); `report`: write the point's warnings (a worker leaves them
        to the agent)."""
        self._stop_reason = None
        self._pool = None
        raise_open_file_limit()
        processes = self._processes or processes_for(self.workload, len(numbered), warmup)
        if processes > 1:
            self._pool = WorkerPool(self, processes)
            self._stop_reason = self._pool.run(numbered, warmup)
        else:
            thread = threading.Thread(target=self._loop_thread, args=(numbered, warmup, schedule), name="load-loop",
                                      daemon=True)
            thread.start()
            thread.join()
            if not warmup:
                self.counts.load_processes = 1
        if not warmup:
            if self.workload.request_rate is not None:
                self.counts.request_rate = self.workload.request_rate
            else:
                self.counts.concurrency = self.workload.concurrency
        if report:
            self._report(warmup)
        return self._stop_reason

    def _report(self, warmup: bool) -> None:
        if not warmup and self.counts.errors:
            throttled = (", %d throttled (HTTP 429/503: the server refused them)" % self.counts.throttled
                         if self.counts.throttled else "")
            self.agent.events.emit("log", level="warn", source="agent",
                                   msg="point %s: %d of %d measured requests failed%s; the point's figures "
                                       "count only the successful ones"
                                       % (self.point.id, self.counts.errors, self.counts.requests, throttled))
        if not warmup and self.counts.client_behind:
            lag = self.counts.client_lag_ms or {}
            if self.counts.arrival_stamps == "kernel":
                effect = ("%.1f%% of its tokens were read together with the one before (their gaps are the "
                          "read's, 0, and the next one's doubled) and %.1f%% of its requests' first tokens "
                          "with the second (their TTFT is late by a gap)"
                          % (100.0 * self.counts.shared_reads / max(self.counts.arrivals, 1),
                             100.0 * self.counts.first_shared / max(self.counts.first_arrivals, 1)))
            else:
                effect = "its TTFT and inter-token figures include the client's own delay"
            self.agent.events.emit("log", level="warn", source="agent",
                                   msg="point %s: the load generator fell behind (its loop ran late: p99 %.1f ms, "
                                       "max %.1f ms); %s" % (self.point.id, lag.get("p99", 0.0), lag.get("max", 0.0),
                                                             effect))

    def inflight(self) -> int:
        """Requests sent and not yet answered, for the live view (read from another thread)."""
        if self._pool is not None:
            return self._pool.inflight()
        tracker = self._inflight
        return len(tracker.protocols) if tracker is not None else 0

    def arrival_offsets(self, n: int) -> List[float]:
        """The request-rate point's Poisson schedule: n arrival times (s) from its origin, seeded."""
        rng = random.Random(self.workload.seed * 1000003 + self.repeat)
        offsets, offset = [], 0.0
        for _ in range(n):
            offset += rng.expovariate(self.workload.request_rate)
            offsets.append(offset)
        return offsets

    def summarize_lag(self, lags_ms: List[float]) -> None:
        """The point's client_lag_ms and client_behind from the loop lags (ms) of every load process."""
        if not lags_ms:
            return
        lag = {"p50": round(quantile(lags_ms, 0.5), 3), "p99": round(quantile(lags_ms, 0.99), 3),
               "max": round(max(lags_ms), 3)}
        self.counts.client_lag_ms = lag
        counts = self.counts
        if counts.arrival_stamps == "kernel" and counts.arrivals:
            merged = (counts.shared_reads / counts.arrivals > SHARED_READS_LIMIT
                      or counts.first_shared / max(counts.first_arrivals, 1) > FIRST_SHARED_LIMIT)
            counts.client_behind = merged and lag["max"] > STALL_LIMIT_MS
        else:
            counts.client_behind = lag["p99"] > LAG_P99_LIMIT_MS or lag["max"] > LAG_MAX_LIMIT_MS

    def lags_ms(self) -> List[float]:
        return [round(lag * 1000.0, 3) for lag in self._lags]

    def read_counts(self) -> Dict[str, int]:
        reads = self._feeder.reads if self._feeder is not None else None
        return {"kernel": reads.kernel, "loop": reads.loop} if reads is not None else {"kernel": 0, "loop": 0}

    def rate_span(self) -> Optional[Tuple[float, float, int]]:
        return self._rate_span

    def _loop_thread(self, numbered: List[Tuple[int, RequestSpec]], warmup: bool,
                     schedule: Optional[Tuple[float, List[float]]] = None) -> None:
        thresholds = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(max(thresholds[0], GC_THRESHOLD_0), *thresholds[1:])
        try:
            run_loop(self._main(numbered, warmup, schedule))
        except BaseException as e:  # noqa: B036 - the loop itself failed: say so, the point's counts stand
            detail = traceback.format_exc()
            self._diag("the load loop of point %s failed:\n%s" % (self.point.id, detail))
            self._emit_error("the load generator stopped on %s: %s; requests not yet sent were not sent"
                             % (type(e).__name__, e), detail)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    async def _main(self, numbered: List[Tuple[int, RequestSpec]], warmup: bool,
                    schedule: Optional[Tuple[float, List[float]]]) -> None:
        loop = asyncio.get_running_loop()
        self._feeder = Feeder(loop)
        self._inflight = InFlight(self)
        self._probe = None
        monitor = LagMonitor(loop)
        monitor.start()
        watcher = loop.create_task(self._watch())
        self._unwritten.clear()
        self._writer_wake = asyncio.Event()
        self._writer_closing = False
        writer = loop.create_task(self._write_events())
        try:
            if self.workload.request_rate is not None and not warmup:
                origin, last_send, sent = await self._run_at_rate(numbered, schedule)
                self._rate_span = (origin, last_send, sent)
                if sent and last_send > origin:
                    self.counts.request_rate_achieved = round(sent / (last_send - origin), 3)
            else:
                # Warm-up in rate mode runs a few at a time: it only has to wake the server up.
                concurrency = self.workload.concurrency or min(len(numbered), 4)
                await self._run_concurrent(numbered, concurrency, warmup)
        finally:
            watcher.cancel()
            self._writer_closing = True
            self._writer_wake.set()
            await writer
            monitor.stop()
            self._feeder.close_idle()
        if not warmup:
            self.counts.http = True
            self.counts.inflight_max = self._inflight.peak
            mean = self._inflight.mean()
            self.counts.inflight_mean = round(mean, 2) if mean is not None else None
            self.counts.arrival_stamps = self._feeder.reads.kind()
            self._lags = monitor.lags
            self.summarize_lag(self.lags_ms())

    # --- stopping ---

    def _check_stop(self) -> Optional[str]:
        if self.agent.cancel.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "timeout"
        if self.agent.server_dead():
            return "server"
        return None

    def _stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        if self._inflight is not None:
            for protocol in list(self._inflight.protocols):
                protocol.abort(STOP_TEXT[self._stop_reason])

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_PERIOD_S)
            reason = self._check_stop()
            if reason:
                self._stop(reason)

    async def _wait_hold(self) -> None:
        """Before a new request: wait out a hold the server asked for. A cancel, the time limit or a dead
        server ends the wait (and stops the point)."""
        while self._stop_reason is None:
            remaining = self._hold_until - time.monotonic()
            if remaining <= 0:
                return
            reason = self._check_stop()
            if reason:
                self._stop(reason)
                return
            await asyncio.sleep(min(remaining, WATCH_PERIOD_S))

    async def _server_check(self) -> None:
        """A request lost its connection: one probe at a time (in a thread: it blocks), and every request that
        fails meanwhile waits for its answer instead of burning through the prompts."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().run_in_executor(None, self.agent.check_server_after_failure)
        await asyncio.shield(self._probe)

    # --- one request ---

    async def _send_guarded(self, index: int, spec: RequestSpec, warmup: bool) -> None:
        """_send, never raising for a request: one that raised inside the agent becomes a failed request
        (`internal error ...`), the point's first such one an `error` event (where: load) with the
        traceback, so no request goes missing and its sender goes on. Only a failure to record even that
        escapes (to the sender's own guard)."""
        done = {"emitted": False}
        try:
            await self._send(index, spec, warmup, done)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: B036 - whatever it is, it must not end the sender silently
            detail = traceback.format_exc()
            self._diag("request %d of point %s raised:\n%s" % (index, self.point.id, detail))
            if done["emitted"]:
                return
            message = "internal error in the load generator: %s: %s" % (type(e).__name__, e)
            self._internal_errors += 1
            if self._internal_errors == 1:
                self._emit_error("request %d: %s; the request is counted as failed (later ones are in "
                                 "agent.log)" % (index, message), detail)
            t = now()
            self.agent.events.emit("request", point=self.point.id, repeat=self.repeat, i=index, warmup=warmup,
                                   ok=False, t_start=t, t_end=t, prompt_tokens=spec.prompt_tokens,
                                   output_tokens=0, tokens_from="chunks", ttft_s=None, latency_s=0.0, itl_s=[],
                                   error=message)
            self._count(warmup, ok=False)

    async def _send(self, index: int, spec: RequestSpec, warmup: bool, done: Dict[str, bool]) -> None:
        # looked up on the module each time, so a test can stand in for it
        result = await stream_request_async(self.endpoint, spec, self.workload, self._feeder, self._inflight,
                                            defer_gaps=True)
        parser = result.pop("parser", None)
        connection_lost = result.pop("connection_lost")
        retry_after = result.pop("retry_after_s")
        if result["http_status"] is None:
            result.pop("http_status")
        if result.get("http_status") in THROTTLE_STATUSES:
            self._throttled(result["http_status"], retry_after, result["error"])
        elif result["ok"]:
            self._throttles_in_row = 0
        for key, note in result.pop("notes", {}).items():
            self._note(key, note)
        if not result["ok"] and self._stop_reason:
            result["error"] = "aborted (%s): %s" % (STOP_TEXT[self._stop_reason], result["error"])
        elif connection_lost:
            await self._server_check()
        error = result.pop("error")
        event = {"point": self.point.id, "repeat": self.repeat, "i": index, "warmup": warmup}
        event.update(result)
        if error is not None:
            event["error"] = error
        self._unwritten.append((event, parser, warmup))
        done["emitted"] = True
        if self._writer_wake is not None:
            self._writer_wake.set()

    async def _write_events(self) -> None:
        """Write the finished requests' events (gaps computed here), WRITE_SLICE_S at a time, until the
        point's loop closes the writer and nothing is left."""
        wake = self._writer_wake
        assert wake is not None
        while True:
            if not self._unwritten:
                if self._writer_closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            until = time.monotonic() + WRITE_SLICE_S
            while self._unwritten and time.monotonic() < until:
                self._write_one(*self._unwritten.popleft())
            if self._unwritten and not self._writer_closing and len(self._unwritten) < WRITE_BACKLOG_MAX:
                await asyncio.sleep(WRITE_PAUSE_S)
            else:
                await asyncio.sleep(0)

    def _write_one(self, event: Dict[str, Any], parser: Any, warmup: bool) -> None:
        """One request's event, counted once written. One that cannot be written (a full disk) is retried
        as a failed request saying why, and if even that fails, reported as an error: never missing silently."""
        try:
            if event.get("itl_s") is None:
                event["itl_s"] = parser.gaps() if parser is not None else []
            self.agent.events.emit("request", **event)
        except Exception as e:
            detail = traceback.format_exc()
            self._diag("the event of request %s of point %s could not be written:\n%s"
                       % (event.get("i"), self.point.id, detail))
            message = "internal error in the load generator: its event could not be written: %s: %s" % (
                type(e).__name__, e)
            try:
                t = now()
                self.agent.events.emit("request", point=self.point.id, repeat=self.repeat, i=event.get("i"),
                                       warmup=warmup, ok=False, t_start=event.get("t_start", t),
                                       t_end=event.get("t_end", t), prompt_tokens=event.get("prompt_tokens", 0),
                                       output_tokens=0, tokens_from="chunks", ttft_s=None, latency_s=0.0, itl_s=[],
                                       error=message)
            except Exception as again:
                self._emit_error("request %s of point %s has no event: %s: %s (and then %s: %s); it is counted as "
                                 "failed" % (event.get("i"), self.point.id, type(e).__name__, e,
                                             type(again).__name__, again), detail)
            self._count(warmup, ok=False)
            return
        self._count(warmup, event["ok"], event.get("tokens_from"), event.get("http_status"))
        if parser is not None and not warmup:
            self.counts.count_arrivals(parser)

    def _count(self, warmup: bool, ok: bool, tokens_from: Optional[str] = None,
               http_status: Optional[int] = None) -> None:
        if not warmup:
            self.counts.http = True
            self.counts.requests += 1
            if not ok:
                self.counts.errors += 1
                if http_status in THROTTLE_STATUSES:
                    self.counts.throttled += 1
            elif tokens_from == "usage":
                self.counts.tokens_usage += 1
            elif tokens_from == "chunks":
                self.counts.tokens_chunks += 1

    def _throttled(self, status: int, retry_after: Optional[float], error: str) -> None:
        """The server answered 429/503: hold new requests for its Retry-After (at most RETRY_AFTER_MAX_S),
        else back off exponentially with jitter. Answers that come while a hold is on do not lengthen the
        step (at concurrency N, N refusals at once are one throttle, not N)."""
        mono = time.monotonic()
        if retry_after is not None:
            delay = min(retry_after, RETRY_AFTER_MAX_S)
            how = "as its Retry-After says" + (" (cut from %g s)" % retry_after
                                               if retry_after > RETRY_AFTER_MAX_S else "")
        else:
            if mono >= self._hold_until:
                self._throttles_in_row += 1
            step = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (max(1, self._throttles_in_row) - 1))
            delay = self._jitter.uniform(step / 2, step)
            how = "exponential backoff with jitter (no Retry-After)"
        self._hold_until = max(self._hold_until, mono + delay)
        share = getattr(self.agent, "share_hold", None)  # a load worker: the other workers hold too
        if share is not None:
            share(self._hold_until)
        self._note("throttled", "the server throttles (%s): new requests wait %.2g s, %s, never past the "
                                "point's time limit; such requests count as failed"
                   % (one_line(error, 160), delay, how))

    # --- reporting ---

    def _diag(self, message: str) -> None:
        diag = getattr(self.agent, "diag", None)
        if diag is not None:
            try:
                diag.write(message)
            except Exception:
                pass

    def _emit_error(self, message: str, detail: Optional[str] = None) -> None:
        fields = {"where": "load", "fatal": False, "point": self.point.id,
                  "message": message}  # type: Dict[str, Any]
        if detail:
            fields["detail"] = detail[-4000:]
        try:
            self.agent.events.emit("error", **fields)
        except Exception:
            self._diag("could not write an error event: %s\n%s" % (message, traceback.format_exc()))

    def _note(self, key: str, message: str) -> None:
        """A `log` warning, once per point and repeat for each kind of oddity."""
        if key in self._noted:
            return
        self._noted.add(key)
        self.agent.events.emit("log", level="warn", source="agent",
                               msg="point %s: %s (noted once per point)" % (self.point.id, message))

    def _report_death(self, task: "asyncio.Task[None]", error: BaseException, replaced: Optional[bool]) -> None:
        """`replaced`: True/False for a concurrency sender, None for a request-rate request's own task."""
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        name = getattr(task, "get_name", lambda: "load task")()
        self._diag("load task %s of point %s died:\n%s" % (name, self.point.id, detail))
        if replaced:
            what = "started another in its place, so the point keeps its concurrency"
        elif replaced is None:
            what = "its request has no event; the request rate is kept (each request has its own task)"
        else:
            what = "no other was started (the point was stopping, or had nothing left to send)"
        self._emit_error("a load sender (%s) stopped on %s: %s; %s" % (name, type(error).__name__, error, what),
                         detail)

    @staticmethod
    def _death(task: "asyncio.Task[None]") -> Optional[BaseException]:
        if task.cancelled():
            return None
        return task.exception()

    # --- the two modes ---

    async def _run_concurrent(self, numbered: List[Tuple[int, RequestSpec]], concurrency: int, warmup: bool) -> None:
        pending = collections.deque(numbered)  # type: Deque[Tuple[int, RequestSpec]]

        async def work() -> None:
            while self._stop_reason is None:
                reason = self._check_stop()  # also here: a failed request may have just found the server dead
                if reason:
                    self._stop(reason)
                    return
                await self._wait_hold()
                if self._stop_reason is not None or not pending:
                    return
                index, spec = pending.popleft()
                await self._send_guarded(index, spec, warmup)

        loop = asyncio.get_running_loop()
        senders = set()  # type: Set[asyncio.Task[None]]
        for n in range(min(concurrency, len(numbered))):
            senders.add(loop.create_task(work()))
            if n % START_BATCH == START_BATCH - 1:
                await asyncio.sleep(0)
        while senders:
            finished, senders = await asyncio.wait(senders, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                error = self._death(task)
                if error is None:
                    continue
                replace = bool(pending) and self._stop_reason is None
                if replace:
                    senders.add(loop.create_task(work()))
                self._report_death(task, error, replace)

    async def _run_at_rate(self, numbered: List[Tuple[int, RequestSpec]],
                           schedule: Optional[Tuple[float, List[float]]]) -> Tuple[float, float, int]:
        """Arrivals at absolute times on one clock: origin + the sum of seeded exponential gaps (plus any hold
        the server asked for), so a late wake-up never delays the arrivals after it; `schedule` gives the
        origin and the offsets instead (a worker's share of the point's one schedule). Returns (the
        schedule's origin, the last send, how many were sent) on the monotonic clock."""
        loop = asyncio.get_running_loop()
        tasks = set()  # type: Set[asyncio.Task[None]]

        def reap(task: "asyncio.Task[None]") -> None:
            tasks.discard(task)
            error = self._death(task)
            if error is not None:
                self._report_death(task, error, None)

        selector = direct_selector(loop)
        if selector is not None and self._feeder.kernel_stamps and not self.endpoint.https:
            selector.fine_timeouts = True  # arrivals to the tenth of a millisecond; reads keep the kernel's stamps
        origin, offsets = schedule if schedule is not None else (time.monotonic(), self.arrival_offsets(len(numbered)))
        shift = 0.0  # holds the server asked for move every later arrival
        last_send = origin
        sent = 0
        for (index, spec), offset in zip(numbered, offsets):
            while self._stop_reason is None:
                reason = self._check_stop()
                if reason:
                    self._stop(reason)
                    break
                target = origin + shift + offset
                if self._hold_until > target:
                    shift += self._hold_until - target  # the server asked to wait: the arrivals go on from there
                    target = self._hold_until
                remaining = target - time.monotonic()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, WATCH_PERIOD_S))
            if self._stop_reason is not None:
                break
            last_send = time.monotonic()
            sent += 1
            task = loop.create_task(self._send_guarded(index, spec, False))
            tasks.add(task)
            task.add_done_callback(reap)
        while tasks:
            await asyncio.wait(set(tasks))
        return origin, last_send, sent
