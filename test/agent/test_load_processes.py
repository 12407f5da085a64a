"""The load generator on worker processes (workers.py, load_worker.py): the same requests and events as on
the agent's own loop, the same request-rate schedule, and stops, throttling, a dead worker and a dead agent
handled as a demanding user expects: nothing lost silently, no process left behind."""

import os
import signal
import subprocess
import sys
import threading
import time
import unittest
from unittest import mock
from typing import Any, List

from .helpers import max_overlap  # noqa: F401  (helpers puts agent/ on sys.path)
from .test_load_streams import (SSE_CHUNKED, LAST_CHUNK, DONE, FakeAgent, ScriptedServer, chunked, sse, text_chunk,
                                tokens, usage_chunk, workload)

from wattbench_agent import stamped, util, workers
from wattbench_agent.client import Endpoint
from wattbench_agent.job import PointConfig
from wattbench_agent.load import LoadRunner, PointCounts
from wattbench_agent.prompts import RequestSpec

STREAM = [SSE_CHUNKED, chunked(tokens(" a")), ("sleep", 0.05), chunked(tokens(" b")), ("sleep", 0.05),
          chunked(sse(text_chunk(" c", finish="length"))), chunked(sse(usage_chunk(2, 3))), chunked(DONE), LAST_CHUNK]


def children_of(pid: int) -> List[int]:
    """Live child processes of `pid` (from /proc), zombies left out."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


class ProcessesForTest(unittest.TestCase):
    def test_one_loop_until_streams_or_chunk_rate_need_more(self):
        for cpus in (1, 2, 16):
            with mock.patch.object(workers, "usable_cpus", lambda: cpus):
                self.check_processes(cpus)

    def test_the_cpus_are_those_this_process_may_run_on(self):
        if hasattr(os, "sched_getaffinity"):
            with mock.patch.object(os, "sched_getaffinity", lambda pid: {0, 3}):
                self.assertEqual(workers.usable_cpus(), 2)  # a cpuset of 2 on a bigger node
            self.assertEqual(workers.usable_cpus(), len(os.sched_getaffinity(0)))
        with mock.patch.object(os, "sched_getaffinity", None, create=True):
            self.assertEqual(workers.usable_cpus(), os.cpu_count() or 1)  # none to ask: every CPU

    def check_processes(self, cpus: int) -> None:
        cases = [
            (dict(concurrency=1), 100, False, 1),
            (dict(concurrency=128), 1000, False, 1),
            (dict(concurrency=129), 1000, False, min(2, cpus)),
            (dict(concurrency=2048), 4096, False, min(8, cpus)),
            (dict(concurrency=300), 2, False, min(2, cpus)),  # never more processes than requests
            # request rate: rate x max_tokens chunks/s, 5,000 a process
            (dict(concurrency=None, request_rate=10.0, max_tokens=256), 100, False, 1),
            (dict(concurrency=None, request_rate=40.0, max_tokens=256), 100, False, min(3, cpus)),
            (dict(concurrency=None, request_rate=40.0, max_tokens=256), 100, True, 1),  # rate warm-up: own loop
            (dict(concurrency=2048, client_processes=1), 4096, False, 1),
            (dict(concurrency=8, client_processes=3), 100, False, 3),  # asked for: even past the CPUs
        ]
        for changes, requests, warmup, expected in cases:
            with self.subTest(cpus=cpus, changes=changes, requests=requests, warmup=warmup):
                self.assertEqual(workers.processes_for(workload(**changes), requests, warmup), expected)

    def test_the_environment_fixes_the_number(self):
        os.environ[workers.PROCESSES_ENV] = "2"
        self.addCleanup(os.environ.pop, workers.PROCESSES_ENV)
        self.assertEqual(workers.processes_for(workload(concurrency=4), 10, False), 2)

    def test_shares(self):
        self.assertEqual(workers.shares(7, 3), [3, 2, 2])
        self.assertEqual(sum(workers.shares(2048, 6)), 2048)


class PoolTestCase(unittest.TestCase):
    def serve(self, script: Any) -> ScriptedServer:
        server = ScriptedServer(script if callable(script) else (lambda n, request: script))
        self.addCleanup(server.close)
        return server

    def run_load(self, server: ScriptedServer, count: int, processes: int, agent: Any = None, **changes: Any):
        agent = agent or FakeAgent()
        fields = dict(concurrency=4, num_prompts=count)
        fields.update(changes)
        point = PointConfig("p", "p", None, 1, workload(**fields))
        counts = PointCounts()
        runner = LoadRunner(agent, Endpoint(server.base_url, "completions", "m"), point, 0, counts, None,
                            processes=processes)
        specs = [RequestSpec("prompt %d" % i, 2, 3) for i in range(count)]
        stop = runner.run(specs, warmup=False, first_index=0)
        return agent, counts, stop, runner


class PoolTest(PoolTestCase):
    def test_two_processes_send_what_one_loop_sends(self):
        server = self.serve(STREAM)
        one = self.run_load(server, 12, 1)
        two = self.run_load(server, 12, 2)
        for agent, counts, stop, _ in (one, two):
            self.assertIsNone(stop)
            requests = agent.events.of_type("request")
            self.assertEqual(sorted(r["i"] for r in requests), list(range(12)))
            self.assertTrue(all(r["ok"] and r["output_tokens"] == 3 and len(r["itl_s"]) == 2 for r in requests),
                            requests)
            # the gaps the server slept between tokens (50 ms), whichever process read them
            self.assertTrue(all(0.045 < gap < 0.2 for r in requests for gap in r["itl_s"]), requests)
            self.assertEqual((counts.requests, counts.errors), (12, 0))
            self.assertEqual(counts.end_fields()["tokens_from"], "usage")
            # each request's three token chunks, 50 ms apart (none in a shared read), counted whichever process read them
            self.assertEqual(counts.arrival_counts(),
                             {"arrivals": 36, "shared_reads": 0, "first_arrivals": 12, "first_shared": 0})
            self.assertEqual(counts.inflight_max, 4)
            self.assertEqual(max_overlap(requests), 4)
        self.assertEqual((one[1].load_processes, two[1].load_processes), (1, 2))
        stamps = "kernel" if stamped.kernel_stamps_possible() else "loop"
        self.assertEqual((one[1].arrival_stamps, two[1].arrival_stamps), (stamps, stamps))  # summed over workers
        # every prompt went to the server once per run, each from the process it was given to
        prompts = sorted(p["body"]["prompt"] for p in server.posts()[12:])
        self.assertEqual(prompts, sorted("prompt %d" % i for i in range(12)))
        self.assertEqual(children_of(os.getpid()), [])

    def test_workers_stamp_events_on_the_agent_s_clock(self):
        # the wall clock stepped an hour since the agent started (NTP, `date -s`): the agent's now() stays on
        # its own anchor, and so must a worker's, started after the step, or its requests would sit an hour
        # away from the power samples the agent stamps
        anchor = util.clock_anchor()
        self.addCleanup(util.adopt_clock_anchor, anchor)
        util.adopt_clock_anchor([anchor[0] - 3600.0, anchor[1]])
        server = self.serve(STREAM)
        before = util.now()
        agent, counts, stop, runner = self.run_load(server, 6, 2)
        after = util.now()
        requests = agent.events.of_type("request")
        self.assertEqual(len(requests), 6)
        self.assertEqual(runner._pool.processes, 2)
        for request in requests:
            self.assertTrue(before <= request["t_start"] <= request["t_end"] <= after, (before, request, after))

    def test_the_request_rate_schedule_is_the_one_loop_schedule(self):
        server = self.serve(STREAM)
        agent, counts, stop, runner = self.run_load(server, 16, 2, concurrency=None, request_rate=25.0)
        self.assertIsNone(stop)
        requests = sorted(agent.events.of_type("request"), key=lambda r: r["i"])
        self.assertEqual(len(requests), 16)
        offsets = runner.arrival_offsets(16)  # the schedule, from its seed, as one loop would send it
        origin = util._WALL_AT_START + (runner._pool.origin - util._MONO_AT_START)  # on the events' clock
        # each request went out at its arrival time (t_start: once its connection was open, so a new
        # connection's setup comes after)
        late = sorted(request["t_start"] - (origin + offset) for request, offset in zip(requests, offsets))
        self.assertGreater(late[0], -0.002, late)
        self.assertLess(late[len(late) // 2], 0.01, late)
        self.assertLess(late[-1], 0.1, late)
        self.assertAlmostEqual(counts.request_rate_achieved, 15 / (offsets[-1] - offsets[0]), delta=2.0)

    def test_a_cancel_stops_every_worker_and_leaves_no_process(self):
        slow = [SSE_CHUNKED, chunked(tokens(" a")), ("sleep", 5.0), chunked(tokens(" b")), chunked(DONE), LAST_CHUNK]
        server = self.serve(slow)
        agent = FakeAgent()
        threading.Timer(0.8, agent.cancel.set).start()
        started = time.monotonic()
        agent, counts, stop, _ = self.run_load(server, 20, 2, agent=agent)
        self.assertEqual(stop, "cancelled")
        self.assertLess(time.monotonic() - started, 4.0)
        requests = agent.events.of_type("request")
        self.assertEqual(len(requests), 4)  # the four in flight, none sent after the cancel
        self.assertTrue(all(not r["ok"] and r["error"].startswith("aborted (cancelled)") for r in requests), requests)
        self.assertEqual(children_of(os.getpid()), [])

    def test_a_throttle_holds_every_worker(self):
        from .test_load_streams import RATE_LIMITED, http_error
        server = self.serve(lambda n, request: (
            http_error(429, "Too Many Requests", RATE_LIMITED, ("Retry-After: 1",)) if n == 0 else STREAM))
        agent, counts, stop, _ = self.run_load(server, 8, 2, concurrency=None, request_rate=20.0)
        requests = sorted(agent.events.of_type("request"), key=lambda r: r["t_start"])
        throttled = [r for r in requests if r.get("http_status") == 429]
        self.assertEqual(len(throttled), 1)
        held_until = throttled[0]["t_end"] + 0.9  # a few ms for the word to reach the other worker
        self.assertFalse([r for r in requests if throttled[0]["t_end"] + 0.05 < r["t_start"] < held_until], requests)
        self.assertEqual(counts.throttled, 1)

    def test_a_worker_that_dies_is_reported_and_the_point_ends(self):
        slow = [SSE_CHUNKED, chunked(tokens(" a")), ("sleep", 0.3), chunked(tokens(" b")), chunked(DONE), LAST_CHUNK]
        server = self.serve(slow)
        agent = FakeAgent()
        original = workers.Worker.__init__

        def kill_first(worker, pool, number, job):
            original(worker, pool, number, job)
            if number == 0:
                threading.Timer(0.5, os.kill, (worker.process.pid, signal.SIGKILL)).start()

        workers.Worker.__init__ = kill_first
        self.addCleanup(setattr, workers.Worker, "__init__", original)
        agent, counts, stop, _ = self.run_load(server, 12, 2, agent=agent)
        errors = agent.events.of_type("error")
        self.assertTrue(any("load worker 0" in e["message"] and "-9" in e["message"] for e in errors), errors)
        requests = agent.events.of_type("request")
        self.assertEqual(len([r for r in requests if r["i"] % 2 == 1]), 6)  # worker 1's share, all of it
        self.assertEqual(children_of(os.getpid()), [])


class DeadAgentTest(unittest.TestCase):
    def test_a_worker_whose_agent_is_gone_stops_and_exits(self):
        server = ScriptedServer(lambda n, request: [SSE_CHUNKED, chunked(tokens(" a")), ("sleep", 30.0), LAST_CHUNK])
        self.addCleanup(server.close)
        pool = workers.WorkerPool(LoadRunner(FakeAgent(), Endpoint(server.base_url, "completions", "m"),
                                             PointConfig("p", "p", None, 1, workload(concurrency=2, num_prompts=2)),
                                             0, PointCounts(), None), 1)
        job = {"endpoint": {"base_url": server.base_url, "api": "completions", "model": "m", "request_fields": None,
                            "headers": {}},
               "workload": workers._workload_fields(workload(concurrency=2, num_prompts=2)),
               "point": {"id": "p", "label": "p", "power_cap_w": None, "repeats": 1}, "repeat": 0, "warmup": False,
               "deadline": None, "concurrency": 2, "seed_offset": 0,
               "specs": [[0, "a", 1, 3], [1, "b", 1, 3]], "offsets": None}
        worker = workers.Worker(pool, 0, job)
        worker.send({"start": time.monotonic()})
        deadline = time.monotonic() + 10
        while len(server.posts()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(server.posts()), 2)
        worker.process.stdin.close()  # what the agent's death does to the pipe
        started = time.monotonic()
        self.assertEqual(worker.process.wait(timeout=10), 0)
        self.assertLess(time.monotonic() - started, 5.0)
        worker.finish()
        self.assertEqual(worker.end["stop"], "cancelled")


if __name__ == "__main__":
    unittest.main()
