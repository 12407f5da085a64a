"""A load worker process (workers.py starts it): one job line on its stdin (its share of a point's
requests), a LoadRunner on it, and each event, diagnostic, server check and its end as a JSON line on its
stdout for the agent to write; `stop` and `checked` lines on its stdin from the agent. Its stdin ending
means the agent is gone: it stops its requests and exits."""

import json
import sys
import threading
from typing import IO, Any, Dict, Optional

from .client import Endpoint
from .job import PointConfig, WorkloadConfig
from .load import LoadRunner, PointCounts, raise_open_file_limit
from .prompts import RequestSpec
from .util import adopt_clock_anchor
from .workers import INFLIGHT_REPORT_S

class _WorkerEvents:
    """The worker's `events`: each event a line up to the agent, which writes it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def emit(self, event_type: str, **fields: Any) -> None:
        self.write({"emit": [event_type, fields]})

    def write(self, message: Dict[str, Any]) -> None:
        line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        with self.lock:
            self.out.write(line)
            self.out.flush()


class _WorkerDiag:
    def __init__(self, events: _WorkerEvents) -> None:
        self.events = events

    def write(self, message: str) -> None:
        self.events.write({"diag": message})


class WorkerAgent:
    """What LoadRunner uses of the agent, inside a worker: cancel and a dead server come from the agent's
    `stop` lines, a server check is asked of the agent and waited for."""

    def __init__(self, events: _WorkerEvents) -> None:
        self.cancel = threading.Event()
        self.events = events
        self.diag = _WorkerDiag(events)
        self._dead = False
        self._checked = threading.Event()
        self.runner = None  # type: Optional[LoadRunner]
        self.hold_until = 0.0  # the latest hold any worker was asked for (monotonic)
        self.started = threading.Event()  # the agent said start (every worker is ready), or stop
        self.origin = None  # type: Optional[float]  # a request-rate share's schedule starts here

    def share_hold(self, until: float) -> None:
        """The server asked this worker to wait (429/503) until `until` (monotonic): the agent tells the others."""
        self.events.write({"hold": until})

    def server_dead(self) -> bool:
        return self._dead

    def check_server_after_failure(self) -> None:
        self._checked.clear()
        self.events.write({"check": True})
        self._checked.wait()

    def told(self, message: Dict[str, Any]) -> None:
        if "stop" in message:
            if message["stop"] == "server":
                self._dead = True
            else:
                self.cancel.set()  # cancelled, or the agent's own time limit: the worker's deadline says which
            self._checked.set()
            self.started.set()
        elif "start" in message:
            self.origin = message["start"]
            self.started.set()
        elif "hold" in message:
            self.hold_until = max(self.hold_until, float(message["hold"]))
            runner = self.runner
            if runner is not None:
                runner._hold_until = max(runner._hold_until, self.hold_until)
        elif "checked" in message:
            self._dead = self._dead or bool(message["checked"])
            self._checked.set()


def main() -> None:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but lines for the agent on the real stdout
    job = json.loads(sys.stdin.buffer.readline())
    if job.get("clock"):
        adopt_clock_anchor(job["clock"])  # before anything is stamped: every event on the agent's clock
    events = _WorkerEvents(out)
    agent = WorkerAgent(events)

    def listen() -> None:
        for raw in sys.stdin.buffer:
            try:
                agent.told(json.loads(raw))
            except ValueError:
                continue
        agent.told({"stop": "cancelled"})  # the agent is gone

    threading.Thread(target=listen, name="worker-stdin", daemon=True).start()
    raise_open_file_limit()
    fields = job["endpoint"]
    endpoint = Endpoint(fields["base_url"], fields["api"], fields["model"], fields.get("request_fields"),
                        fields.get("headers"))
    workload_fields = dict(job["workload"])
    workload_fields["concurrency"] = job["concurrency"]
    workload_fields["seed"] = workload_fields["seed"] + job["seed_offset"]
    workload = WorkloadConfig(**workload_fields)
    point = PointConfig(job["point"]["id"], job["point"]["label"], job["point"]["power_cap_w"],
                        job["point"]["repeats"], workload)
    counts = PointCounts()
    runner = LoadRunner(agent, endpoint, point, job["repeat"], counts, job["deadline"], processes=1)
    agent.runner = runner
    runner._hold_until = max(runner._hold_until, agent.hold_until)  # a hold that came before the runner
    events.write({"ready": True})
    agent.started.wait()  # every worker starts together, once all are up
    numbered = [(i, RequestSpec(prompt, prompt_tokens, max_tokens)) for i, prompt, prompt_tokens, max_tokens
                in job["specs"]]
    done = threading.Event()

    def report_inflight() -> None:
        last = -1
        while not done.wait(INFLIGHT_REPORT_S):
            n = runner.inflight()
            if n != last:
                events.write({"inflight": n})
                last = n

    reporter = threading.Thread(target=report_inflight, name="worker-inflight", daemon=True)
    reporter.start()
    stop = None
    try:
        schedule = (agent.origin, job["offsets"]) if job.get("offsets") is not None and agent.origin else None
        stop = runner.run_numbered(numbered, job["warmup"], schedule=schedule, report=False)
    finally:
        done.set()
        reporter.join()
    reads = runner.read_counts()
    events.write({"end": {"stop": stop, "lags": runner.lags_ms(), "reads": reads, "rate": runner.rate_span(),
                          "arrival_counts": counts.arrival_counts()}})
