"""Servers that never become ready, exit early, die mid-run, or are not there at all."""

import os
import shlex
import sys

from .helpers import AGENT, SIM_PROFILE_PATH, AgentTestCase, find_free_port, http_point

from wattbench_agent.client import Endpoint
from wattbench_agent.util import group_alive


class ServerFailureTest(AgentTestCase):
    def server_job(self, command, port, points=None, ready_timeout_s=20.0):
        job = self.make_job(points or [http_point("p1")], telemetry={"source": "sim", "idle_baseline_s": 0})
        job["server"] = {"sim": False, "command": command, "base_url": "http://127.0.0.1:%d/v1" % port,
                         "api": "completions", "model": "sim-model", "ready_timeout_s": ready_timeout_s,
                         "env": {"GREETING": "loading weights"}}
        return job

    def assert_fatal_server_error(self, result, message_part):
        self.assertEqual(result.returncode, 1)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        errors = self.of_type(events, "error")
        self.assertEqual(len(errors), 1, errors)
        error = errors[0]
        self.assertEqual((error["where"], error["fatal"]), ("server", True))
        self.assertIn(message_part, error["message"])
        done = self.done(events)
        self.assertEqual(done["status"], "error")
        self.assertEqual(done["reason"], error["message"])
        self.assertFalse(self.of_type(events, "point"))
        return events, error

    def test_server_never_ready(self):
        command = 'echo "$GREETING"; echo "RuntimeError: CUDA out of memory" >&2; exec sleep 60'
        result = self.run_agent(self.server_job(command, find_free_port(), ready_timeout_s=1.0))
        events, error = self.assert_fatal_server_error(result, "did not become ready within 1 s")
        self.assertIn("connection refused", error["message"])
        # the detail quotes the server's own output (stdout and stderr, env merged in)
        self.assertIn("loading weights", error["detail"])
        self.assertIn("CUDA out of memory", error["detail"])
        self.assertEqual([e["phase"] for e in self.of_type(events, "phase")], ["server_start", "server_stop"])
        server_log = [e for e in self.of_type(events, "log") if e["source"] == "server"]
        self.assertTrue(any("CUDA out of memory" in e["msg"] and e["level"] == "warn" for e in server_log))
        # the server's group was stopped (TERM reached `sleep`)
        self.assertFalse(group_alive(self.state(result.run_dir)["server_pgid"]))

    def test_server_exits_before_ready(self):
        command = "echo 'error: model not found'; exit 3"
        result = self.run_agent(self.server_job(command, find_free_port()))
        events, error = self.assert_fatal_server_error(result, "exited with code 3 before it became ready")
        self.assertIn("model not found", error["detail"])

    def test_server_dies_mid_run(self):
        port = find_free_port()
        sim_server = " ".join(shlex.quote(a) for a in [
            sys.executable, AGENT, "sim-server", "--port", str(port), "--profile", SIM_PROFILE_PATH,
            "--sim-dir", self.sim_dir])
        # The server serves for a while, then dies without a word.
        command = "%s & server=$!; sleep 2; kill -9 $server; echo 'Segmentation fault'; exit 139" % sim_server
        long_point = http_point("dies", concurrency=2, num_prompts=400, max_tokens=50,
                                dataset={"kind": "synthetic", "input_tokens": 8, "output_tokens": 50})
        never_run = http_point("after")
        result = self.run_agent(self.server_job(command, port, points=[long_point, never_run]))
        self.assertEqual(result.returncode, 1, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)

        errors = self.of_type(events, "error")
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual((errors[0]["where"], errors[0]["fatal"], errors[0]["point"]), ("server", True, "dies"))
        self.assertIn("exited with code 139", errors[0]["message"])
        self.assertIn("Segmentation fault", errors[0]["detail"])

        # requests measured before the death are kept; the ones in flight failed
        requests = self.of_type(events, "request", point="dies")
        self.assertGreater(sum(r["ok"] for r in requests), 3)
        self.assertTrue(any(not r["ok"] for r in requests))
        ends = {e["point"]: e for e in self.of_type(events, "point", state="end")}
        self.assertEqual(ends["dies"]["status"], "error")
        self.assertEqual(ends["dies"]["requests"], len(requests))
        self.assertEqual(ends["after"]["status"], "error")
        self.assertEqual(ends["after"]["requests"], 0)
        self.assertFalse(self.of_type(events, "request", point="after"))
        done = self.done(events)
        self.assertEqual(done["status"], "error")
        self.assertIn("exited with code 139", done["reason"])
        # sampling went on throughout
        self.assertTrue(self.of_type(events, "sample", point="dies"))

    def test_unreachable_base_url(self):
        job = self.server_job(None, find_free_port())
        result = self.run_agent(job)
        events, error = self.assert_fatal_server_error(result, "no server answers at http://127.0.0.1:")
        self.assertIn("connection refused", error["message"])
        self.assertIn("set server.command", error["message"])

    def test_external_server_already_running(self):
        # server.command null with a live server at base_url: the agent just uses it
        port = find_free_port()
        import subprocess
        with open(os.path.join(self.tmp, "external.log"), "w") as log:
            server = subprocess.Popen(
                self.agent_command("sim-server", "--port", str(port), "--profile", SIM_PROFILE_PATH,
                                   "--sim-dir", self.sim_dir), env=self.env, stdout=log, stderr=log)
        self._procs.append(server)
        endpoint = Endpoint("http://127.0.0.1:%d/v1" % port, "completions", "m")
        self.wait_for(lambda: endpoint.probe()[0], what="the external server")
        result = self.run_agent(self.server_job(None, port))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        self.assertEqual(self.done(events)["status"], "ok")
        self.assertEqual(len(self.of_type(events, "request", ok=True)), 8)
        self.assertNotIn("server_stop", [e["phase"] for e in self.of_type(events, "phase")])
        self.assertIsNone(server.poll(), "the agent must not stop a server it did not start")
