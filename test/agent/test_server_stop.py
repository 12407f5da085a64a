"""The server's process group is stopped on every way out: a second cancel KILLs a server that ignores
TERM without waiting out the grace; after an agent died hard, `stop-server --run-dir DIR` stops the server
it left, but only once state.json's fingerprint shows the group is still that server."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

from .helpers import AGENT, SIM_PROFILE_PATH, AgentTestCase, find_free_port, http_point

from wattbench_agent.processes import SERVER_TOKEN_ENV
from wattbench_agent.util import group_alive, pid_alive, process_start_ticks


def long_point():
    return http_point("long", concurrency=2, num_prompts=500, max_tokens=200,
                      dataset={"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 8},
                               "output_tokens": {"dist": "fixed", "mean": 200}})


class ServerStopTest(AgentTestCase):
    def stubborn_server_job(self):
        """A server with a process that ignores SIGTERM (as a worker busy shutting down does)."""
        port = find_free_port()
        command = "(trap '' TERM; exec sleep 300) & exec %s" % " ".join(shlex.quote(a) for a in [
            sys.executable, AGENT, "sim-server", "--port", str(port), "--profile", SIM_PROFILE_PATH,
            "--sim-dir", self.sim_dir])
        job = self.make_job([long_point()], telemetry={"source": "sim", "idle_baseline_s": 0})
        job["server"] = {"sim": False, "command": command, "base_url": "http://127.0.0.1:%d/v1" % port,
                         "api": "completions", "model": "sim-model", "ready_timeout_s": 20, "env": {}}
        return job

    def stop_server(self, run_dir, *extra):
        out = self.run_tool("stop-server", "--run-dir", run_dir, *extra)
        return out.returncode, json.loads(out.stdout)

    def test_told_twice_the_agent_kills_the_server_at_once(self):
        run = self.start_agent(self.stubborn_server_job())
        self.wait_for_event(run.run_dir, lambda e: e["type"] == "request", what="the first request")
        server_pgid = self.state(run.run_dir)["server_pgid"]
        os.killpg(run.pid, signal.SIGTERM)
        self.wait_for_event(run.run_dir, lambda e: e.get("phase") == "server_stop", what="the server stop")
        time.sleep(0.5)
        self.assertTrue(group_alive(server_pgid), "the server ignores TERM: it is still in its grace period")
        told_again = time.monotonic()
        os.killpg(run.pid, signal.SIGTERM)
        run.proc.wait(timeout=30)
        self.assertLess(time.monotonic() - told_again, 6.0, "the agent waited out the grace period")
        self.assertFalse(group_alive(server_pgid), "the server outlived the agent")
        events = self.events(run.run_dir)
        self.assert_well_formed(events)
        self.assertEqual(self.done(events)["status"], "cancelled")
        self.assertEqual(run.proc.returncode, 0)

    def test_state_json_fingerprints_the_server(self):
        run = self.start_agent(self.make_job([long_point()], telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.wait_for_event(run.run_dir, lambda e: e["type"] == "request", what="the first request")
        state = self.state(run.run_dir)
        self.assertEqual(state["pid_start"], process_start_ticks(run.pid))
        self.assertEqual(state["server_pid"], state["server_pgid"])
        self.assertEqual(state["server_start"], process_start_ticks(state["server_pid"]))
        with open("/proc/%d/environ" % state["server_pid"], "rb") as f:
            self.assertIn(("%s=%s" % (SERVER_TOKEN_ENV, state["server_token"])).encode(), f.read().split(b"\0"))
        with open("/proc/sys/kernel/random/boot_id") as f:
            self.assertEqual(state["boot_id"], f.read().strip())

        # while the agent lives, stop-server leaves its server alone
        code, result = self.stop_server(run.run_dir)
        self.assertEqual((code, result["status"]), (0, "busy"))
        self.assertTrue(group_alive(state["server_pgid"]))

        run.proc.send_signal(signal.SIGKILL)  # died hard: no clean-up, the server lives on in its session
        run.proc.wait(timeout=10)
        self.assertTrue(group_alive(state["server_pgid"]))
        code, result = self.stop_server(run.run_dir)
        self.assertEqual(code, 0)
        self.assertEqual((result["status"], result["pgid"], result["signal"]), ("stopped", state["server_pgid"], "TERM"))
        self.assertFalse(group_alive(state["server_pgid"]))
        code, result = self.stop_server(run.run_dir)
        self.assertEqual((code, result["status"], result["signal"]), (0, "nothing", None))

    def fake_run_dir(self, **state):
        run_dir = self.new_run_dir()
        os.makedirs(run_dir)
        record = {"pid": 999999999, "pid_start": 1, "status": "running"}
        record.update(state)
        with open(os.path.join(run_dir, "state.json"), "w") as f:
            json.dump(record, f)
        return run_dir

    def spawn_group(self, command, env=None):
        proc = subprocess.Popen(command, shell=True, start_new_session=True, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._procs.append(proc)
        self.addCleanup(lambda: group_alive(proc.pid) and os.killpg(proc.pid, signal.SIGKILL))
        return proc

    def test_a_group_that_is_not_the_server_is_left_alone(self):
        other = self.spawn_group("exec sleep 30")  # a process group that now has the recorded id
        start = process_start_ticks(other.pid)
        code, result = self.stop_server(self.fake_run_dir(server_pgid=other.pid, server_start=start + 1,
                                                          server_token="abc"))
        self.assertEqual((code, result["status"]), (0, "not_ours"))
        self.assertIn("reused", result["message"])
        # an older agent's state.json, without the fingerprint: nothing is killed on a guess
        code, result = self.stop_server(self.fake_run_dir(server_pgid=other.pid))
        self.assertEqual((code, result["status"]), (0, "unverified"))
        self.assertTrue(pid_alive(other.pid))
        code, result = self.stop_server(self.fake_run_dir(server_pgid=other.pid, server_start=start,
                                                          server_token="abc"), "--grace", "1")
        self.assertEqual((code, result["status"]), (0, "stopped"))
        self.wait_for(lambda: other.poll() is not None, what="the group to end")

    def test_a_server_whose_leader_is_gone_is_known_by_its_token(self):
        env = dict(self.env, **{SERVER_TOKEN_ENV: "tok-1"})
        leader = self.spawn_group("sleep 30 & exit 0", env=env)  # the shell goes, its child stays in the group
        leader.wait(timeout=10)
        self.assertTrue(group_alive(leader.pid))
        code, result = self.stop_server(self.fake_run_dir(server_pgid=leader.pid, server_start=1,
                                                          server_token="tok-2"))
        self.assertEqual((code, result["status"]), (0, "not_ours"))
        self.assertTrue(group_alive(leader.pid))
        code, result = self.stop_server(self.fake_run_dir(server_pgid=leader.pid, server_start=1,
                                                          server_token="tok-1"))
        self.assertEqual((code, result["status"], result["signal"]), (0, "stopped", "TERM"))
        self.wait_for(lambda: not group_alive(leader.pid), what="the group to end")

    def test_nothing_to_stop(self):
        code, result = self.stop_server(os.path.join(self.tmp, "no-such-run"))
        self.assertEqual((code, result["status"], result["pgid"]), (0, "nothing", None))
        code, result = self.stop_server(self.fake_run_dir(server_pgid=None))
        self.assertEqual((code, result["status"]), (0, "nothing"))
        broken = self.new_run_dir()
        os.makedirs(broken)
        with open(os.path.join(broken, "state.json"), "w") as f:
            f.write("{not json")
        code, result = self.stop_server(broken)
        self.assertEqual((code, result["status"]), (1, "failed"))
