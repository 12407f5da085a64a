"""The run's timing (baseline, time limits, ready timeout, stop grace) runs on the monotonic clock: the
wall clock stepping an hour back or forth mid-run (NTP, a VM resumed) changes none of it. The agent runs
in this process here, so that time.time can be stepped."""

import os
import threading
import time
from unittest import mock

from .helpers import AgentTestCase, command_point, find_free_port

from wattbench_agent import processes
from wattbench_agent.events import EventWriter
from wattbench_agent.run import AgentRun
from wattbench_agent.util import DiagLog, group_alive


class RecordingWriter(EventWriter):
    """Notes the monotonic time of every event (their `t` is the stepped wall clock)."""

    def __init__(self, path):
        super().__init__(path, mirror_stdout=False)
        self.seen = []

    def emit(self, event_type, t=None, **fields):
        event = super().emit(event_type, t=t, **fields)
        self.seen.append((time.monotonic(), event))
        return event


class WallClockTest(AgentTestCase):
    def run_in_process(self, job, step_s, step_after_s=0.3):
        job_path = self.write_job(job)
        run_dir = self.new_run_dir()
        os.makedirs(run_dir)
        events = RecordingWriter(os.path.join(run_dir, "events.ndjson"))
        real_time = time.time
        stepped = threading.Event()
        threading.Timer(step_after_s, stepped.set).start()

        def wall_clock():
            return real_time() + (step_s if stepped.is_set() else 0.0)

        env = {"WATTBENCH_HOME": self.home, "WATTBENCH_SIM_DIR": self.sim_dir}
        with mock.patch.dict(os.environ, env), mock.patch("time.time", wall_clock):
            agent = AgentRun(job_path, run_dir, self.sim_dir, events, DiagLog(os.path.join(run_dir, "agent.log")))
            started = time.monotonic()
            code = agent.execute()
            ended = time.monotonic()
        events.close()
        self.assertTrue(stepped.is_set())
        return code, started, ended, events.seen, agent

    @staticmethod
    def first(seen, **match):
        return next((m, e) for m, e in seen if all(e.get(k) == v for k, v in match.items()))

    def check_baseline_and_time_limit(self, step_s):
        job = self.make_job([command_point("stuck", "exec sleep 30", workload={"time_limit_s": 1.0}),
                             command_point("quick", "sleep 0.2")],
                            server=None, telemetry={"source": "sim", "interval_s": 0.1, "idle_baseline_s": 0.8})
        code, started, ended, seen, _ = self.run_in_process(job, step_s)
        self.assertEqual(code, 0)
        baseline, _ = self.first(seen, type="phase", phase="baseline")
        stuck_start, _ = self.first(seen, type="point", point="stuck", state="start")
        self.assertAlmostEqual(stuck_start - baseline, 0.8, delta=0.4)
        stuck_end, end = self.first(seen, type="point", point="stuck", state="end")
        self.assertEqual(end["status"], "timeout")
        self.assertAlmostEqual(stuck_end - stuck_start, 1.0, delta=0.6)
        _, end = self.first(seen, type="point", point="quick", state="end")
        self.assertEqual(end["status"], "ok")
        self.assertLess(ended - started, 8)
        # Event times are labels that move with the monotonic clock: the step moves none of their differences,
        # so the summary's windows, energy integrals and token rates are unaffected.
        m0, e0 = seen[0]
        for m, e in seen:
            self.assertAlmostEqual(e["t"] - e0["t"], m - m0, delta=0.05, msg=e)

    def test_wall_clock_one_hour_back(self):
        self.check_baseline_and_time_limit(-3600.0)

    def test_wall_clock_one_hour_forward(self):
        self.check_baseline_and_time_limit(+3600.0)

    def test_ready_timeout_and_stop_grace_keep_their_length(self):
        for step_s in (-3600.0, 3600.0):
            port = find_free_port()
            job = self.make_job([command_point("p", "true")], telemetry={"source": "sim", "idle_baseline_s": 0})
            # never ready, and deaf to TERM: the agent waits its ready timeout, then its grace, then KILLs
            job["server"] = {"sim": False, "command": "trap '' TERM; exec sleep 60",
                             "base_url": "http://127.0.0.1:%d/v1" % port, "api": "completions",
                             "model": "m", "ready_timeout_s": 1.0, "env": {}}
            with mock.patch.object(processes, "SERVER_STOP_GRACE_S", 1.0):
                code, started, ended, seen, agent = self.run_in_process(job, step_s)
            self.assertEqual(code, 1)
            server_start, _ = self.first(seen, type="phase", phase="server_start")
            error_at, error = self.first(seen, type="error")
            self.assertIn("did not become ready within 1 s", error["message"])
            self.assertAlmostEqual(error_at - server_start, 1.0, delta=0.6)
            stop_at, _ = self.first(seen, type="phase", phase="server_stop")
            done_at, _ = self.first(seen, type="done")
            self.assertAlmostEqual(done_at - stop_at, 1.0, delta=0.7)  # the 1 s grace, then KILL
            self.assertFalse(group_alive(agent.server.pgid))
