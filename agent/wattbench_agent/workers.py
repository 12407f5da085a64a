"""The load generator on several processes: one event loop reads perhaps 20,000-40,000 chunks a second
before its own lateness shows, so a point with many streams splits them among worker processes, each a
LoadRunner of its own on a share of the prompts (round-robin) and of the concurrency, or on its share of
the one Poisson schedule the point would have had on a single loop (the same arrival times). The agent
stays the one writer of events: a worker sends each finished request, warning and error up its stdout as
a JSON line and the agent writes it; the agent sends a worker `stop` lines and answers its server checks
on its stdin. A worker whose stdin ends (the agent died) stops its requests and exits.

A worker (load_worker.py) is `python -c` on this package's own location (the archive, or the source folder), so it is the
same code as the agent's; it is in the agent's process group, so stopping the agent's group stops it."""

import json
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

from .job import WorkloadConfig
from .prompts import RequestSpec
from .stamped import ReadCounts
from .util import clock_anchor

STREAMS_PER_PROCESS = 128  # concurrency points: a process per this many streams ...
CHUNKS_PER_PROCESS = 5000.0  # ... request-rate points: per this many chunks/s at most (rate x max_tokens)
MAX_PROCESSES = 8
PROCESSES_ENV = "WATTBENCH_LOAD_PROCESSES"  # a fixed number of load processes (1: the agent's own loop only)
INFLIGHT_REPORT_S = 0.02  # how often a worker says how many of its requests are in flight
WORKER_READY_WAIT_S = 30.0  # how long the agent waits for every worker to be up before it starts those that are
WORKER_EXIT_WAIT_S = 10.0  # after its last line, how long a worker may take to exit before it is killed


def usable_cpus() -> int:
    """The CPUs this process may run on: a Slurm step or a container's cpuset is often a few of the node's
    (os.cpu_count() counts them all), and workers beyond them only take turns on the same cores."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux only
    if affinity is not None:
        try:
            return max(1, len(affinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def processes_for(workload: WorkloadConfig, requests: int, warmup: bool) -> int:
    """How many load processes a point's requests get: 1 (the agent's own loop) unless streams or the
    chunk rate are past what one loop reads faithfully, never more than the host's CPUs or the requests.
    `workload.client_processes` or WATTBENCH_LOAD_PROCESSES fixes the number."""
    fixed = getattr(workload, "client_processes", None)
    if fixed is None:
        try:
            fixed = int(os.environ[PROCESSES_ENV]) if os.environ.get(PROCESSES_ENV) else None
        except ValueError:
            fixed = None
    if warmup and workload.request_rate is not None:
        return 1  # rate warm-up runs a few at a time on the agent's loop
    cpus = usable_cpus()
    if fixed is not None:
        wanted = fixed
    elif workload.request_rate is not None:
        wanted = math.ceil(workload.request_rate * workload.max_tokens / CHUNKS_PER_PROCESS)
    else:
        wanted = math.ceil((workload.concurrency or 1) / STREAMS_PER_PROCESS)
    cap = requests if fixed is not None else min(cpus, MAX_PROCESSES, requests)
    if workload.concurrency and workload.request_rate is None:
        cap = min(cap, workload.concurrency)
    return max(1, min(wanted, cap))


def shares(total: int, parts: int) -> List[int]:
    """`total` split into `parts` whole shares differing by at most one, larger first."""
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


def _package_root() -> str:
    """What sys.path needs for `import wattbench_agent`: the archive, or the folder holding the package."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _workload_fields(workload: WorkloadConfig) -> Dict[str, Any]:
    fields = dict(vars(workload))
    fields["dataset"] = None  # the worker is given its prompts, not the dataset
    return fields


class Worker:
    """One worker process, as the agent sees it: its job sent, its lines read by a thread of its own."""

    def __init__(self, pool: "WorkerPool", number: int, job: Dict[str, Any]) -> None:
        self.pool = pool
        self.number = number
        code = ("import sys; sys.path.insert(0, %r); from wattbench_agent.load_worker import main; main()" % _package_root())
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
        self.inflight = 0
        self.end = None  # type: Optional[Dict[str, Any]]
        self.ready = threading.Event()  # it has its job and waits for the word to start
        self._write_lock = threading.Lock()
        self.send(job)
        self.stderr_tail = []  # type: List[str]
        self.reader = threading.Thread(target=self._read, name="load-worker-%d" % number, daemon=True)
        self.reader.start()
        self._stderr = threading.Thread(target=self._read_stderr, name="load-worker-%d-err" % number, daemon=True)
        self._stderr.start()

    def send(self, message: Dict[str, Any]) -> None:
        with self._write_lock:
            try:
                stdin = self.process.stdin
                assert stdin is not None
                stdin.write((json.dumps(message) + "\n").encode())
                stdin.flush()
            except (OSError, ValueError):
                pass  # it has exited: its reader says how

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                self.pool.diag("load worker %d wrote a line that is not JSON: %r" % (self.number, raw[:200]))
                continue
            try:
                self.pool.handle(self, message)
            except Exception:
                self.pool.diag("load worker %d's line could not be handled:\n%s" % (self.number,
                                                                                   traceback.format_exc()))

    def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        for raw in stderr:
            self.stderr_tail = (self.stderr_tail + [raw.decode("utf-8", "replace").rstrip()])[-20:]

    def finish(self) -> Optional[int]:
        """Wait for its lines to end and the process to exit (killed if it will not); its exit code."""
        self.reader.join()
        try:
            code = self.process.wait(timeout=WORKER_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._stderr.join(timeout=2.0)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        return code


class WorkerPool:
    """A point's requests on several worker processes, for a LoadRunner (`runner`): the agent's end of
    it. It writes what the workers report as the runner would have, and counts the point the same way."""

    def __init__(self, runner: Any, processes: int) -> None:
        self.runner = runner
        self.processes = processes
        self.workers = []  # type: List[Worker]
        self._lock = threading.Lock()
        self._noted = set()  # type: set
        self._lags = []  # type: List[float]
        self._reads = ReadCounts()  # every worker's, summed
        self._inflight_since = None  # type: Optional[float]
        self._inflight_first = None  # type: Optional[float]
        self._inflight_area = 0.0
        self.inflight_peak = 0
        self._rate = []  # type: List[Tuple[float, float, int]]
        self._last_total = 0
        self.origin = None  # type: Optional[float]  # a request-rate point's schedule starts here (monotonic)

    def inflight(self) -> int:
        return sum(worker.inflight for worker in self.workers)

    def diag(self, message: str) -> None:
        self.runner._diag(message)

    def run(self, numbered: List[Tuple[int, RequestSpec]], warmup: bool) -> Optional[str]:
        """Send `numbered` on the workers; None when all were sent and answered, else why it stopped early."""
        runner = self.runner
        workload = runner.workload
        parts = self.processes
        rate = workload.request_rate is not None and not warmup
        offsets = runner.arrival_offsets(len(numbered)) if rate else None
        concurrency = shares(workload.concurrency or min(len(numbered), 4), parts)
        endpoint = runner.endpoint
        for k in range(parts):
            mine = numbered[k::parts]
            job = {"endpoint": {"base_url": endpoint.base_url, "api": endpoint.api, "model": endpoint.model,
                                "request_fields": endpoint.request_fields, "headers": endpoint.headers},
                   "workload": _workload_fields(workload),
                   "point": {"id": runner.point.id, "label": runner.point.label,
                             "power_cap_w": runner.point.power_cap_w, "repeats": runner.point.repeats},
                   "repeat": runner.repeat, "warmup": warmup, "deadline": runner.deadline,
                   "concurrency": concurrency[k], "seed_offset": k,
                   "specs": [[i, spec.prompt, spec.prompt_tokens, spec.max_tokens] for i, spec in mine],
                   "offsets": offsets[k::parts] if offsets is not None else None,
                   "clock": clock_anchor()}
            self.workers.append(Worker(self, k, job))
        self._start(rate)
        self._step_inflight()
        stop = None  # type: Optional[str]
        try:
            while any(worker.reader.is_alive() for worker in self.workers):
                if stop is None:
                    stop = runner._check_stop()
                    if stop:
                        runner._stop_reason = stop
                        for worker in self.workers:
                            worker.send({"stop": stop})
                for worker in self.workers:
                    worker.reader.join(timeout=0.05 / len(self.workers))
        finally:
            for worker in self.workers:
                if worker.end is None:  # still running only if this loop was left by an exception
                    worker.send({"stop": stop or "cancelled"})
                code = worker.finish()
                if worker.end is None:
                    tail = "\n".join(worker.stderr_tail[-10:])
                    runner._emit_error("load worker %d of point %s ended (exit code %s) before it finished: the "
                                       "requests it had in flight have no events" % (worker.number, runner.point.id,
                                                                                     code), tail or None)
        return self._finish(warmup, stop)

    def _start(self, rate: bool) -> None:
        """Once every worker is up (or has died, or WORKER_READY_WAIT_S passed), start them together; a
        request-rate point's schedule starts then, on every worker's monotonic clock."""
        deadline = time.monotonic() + WORKER_READY_WAIT_S
        while time.monotonic() < deadline and not all(w.ready.is_set() or not w.reader.is_alive() for w in self.workers):
            if self.runner._check_stop():
                break
            time.sleep(0.005)
        origin = time.monotonic() + 0.005
        self.origin = origin if rate else None
        for worker in self.workers:
            worker.send({"start": origin})

    def _finish(self, warmup: bool, stop: Optional[str]) -> Optional[str]:
        runner = self.runner
        ends = [worker.end for worker in self.workers if worker.end is not None]
        reasons = [end.get("stop") for end in ends if end.get("stop")]
        stop = stop or (reasons[0] if reasons else None)
        if not warmup:
            counts = runner.counts
            counts.http = True
            counts.inflight_max = self.inflight_peak
            mean = self._inflight_mean()
            counts.inflight_mean = round(mean, 2) if mean is not None else None
            counts.load_processes = self.processes
            if self._rate:
                origin = min(r[0] for r in self._rate)
                last = max(r[1] for r in self._rate)
                sent = sum(r[2] for r in self._rate)
                runner._rate_span = (origin, last, sent)  # the point's, as one loop's rate_span() says it
                if sent and last > origin:
                    counts.request_rate_achieved = round(sent / (last - origin), 3)
            counts.arrival_stamps = self._reads.kind()
            runner.summarize_lag(self._lags)
        return stop

    def _step_inflight(self) -> None:
        t = time.monotonic()
        total = self.inflight()
        if self._inflight_since is not None:
            self._inflight_area += self._last_total * (t - self._inflight_since)
        self._last_total = total
        self._inflight_since = t
        if total and self._inflight_first is None:
            self._inflight_first = t
        self.inflight_peak = max(self.inflight_peak, total)

    def _inflight_mean(self) -> Optional[float]:
        if self._inflight_first is None or self._inflight_since is None:
            return None
        span = self._inflight_since - self._inflight_first
        return self._inflight_area / span if span > 0 else None

    def handle(self, worker: Worker, message: Dict[str, Any]) -> None:
        runner = self.runner
        if "ready" in message:
            worker.ready.set()
        elif "inflight" in message:
            with self._lock:
                worker.inflight = int(message["inflight"])
                self._step_inflight()
        elif "emit" in message:
            kind, fields = message["emit"]
            if kind == "request":
                runner.agent.events.emit("request", **fields)
                with self._lock:
                    runner._count(bool(fields.get("warmup")), bool(fields.get("ok")), fields.get("tokens_from"),
                                  fields.get("http_status"))
            elif kind == "log":
                with self._lock:
                    if fields.get("msg") in self._noted:
                        return
                    self._noted.add(fields.get("msg"))
                runner.agent.events.emit("log", **fields)
            else:
                runner.agent.events.emit(kind, **fields)
        elif "diag" in message:
            self.diag("load worker %d: %s" % (worker.number, message["diag"]))
        elif "hold" in message:
            for other in self.workers:
                if other is not worker:
                    other.send({"hold": message["hold"]})
        elif "check" in message:
            threading.Thread(target=self._check, args=(worker,), name="load-check", daemon=True).start()
        elif "end" in message:
            end = message["end"]
            with self._lock:
                worker.end = end
                worker.inflight = 0
                self._step_inflight()
                self._lags.extend(end.get("lags") or [])
                reads = end.get("reads") or {}
                self._reads.kernel += int(reads.get("kernel", 0))
                self._reads.loop += int(reads.get("loop", 0))
                runner.counts.add_arrival_counts(end.get("arrival_counts") or {})
                if end.get("rate"):
                    self._rate.append(tuple(end["rate"]))  # type: ignore[arg-type]

    def _check(self, worker: Worker) -> None:
        agent = self.runner.agent
        try:
            agent.check_server_after_failure()
        except Exception:
            self.diag("server check for load worker %d failed:\n%s" % (worker.number, traceback.format_exc()))
        worker.send({"checked": bool(agent.server_dead())})
