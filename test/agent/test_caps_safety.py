"""Power caps always come back: after SIGTERM cancel (no child process left), and after `kill -9` of the
agent, through `restore-caps` or the next `run`."""

import json
import os
import signal
import socket

from .helpers import AgentTestCase, http_point

from wattbench_agent.util import group_alive, pid_alive


def long_capped_point(cap_w):
    # Far more work than the test waits for: the agent is stopped in the middle of it.
    return http_point("long", power_cap_w=cap_w, concurrency=2, num_prompts=500, max_tokens=200,
                      dataset={"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 8},
                               "output_tokens": {"dist": "fixed", "mean": 200}})


class CapsSafetyTest(AgentTestCase):
    def caps_file(self):
        # The saved originals are per host now: $WATTBENCH_HOME/caps-saved/HOST.json (helpers.caps_file() still
        # names the old, shared caps-saved.json).
        return os.path.join(self.home, "caps-saved", socket.gethostname() + ".json")

    def job(self):
        return self.make_job([long_capped_point(150)], telemetry={"source": "sim", "idle_baseline_s": 0})

    def start_and_wait_for_measure(self, detach=False):
        run = self.start_agent(self.job(), detach=detach)
        self.wait_for_event(run.run_dir, lambda e: e["type"] == "request", what="the first request")
        self.assertEqual(self.sim_limits(), {"0": 150.0, "1": 150.0})
        self.assertTrue(os.path.exists(self.caps_file()))
        with open(self.caps_file()) as f:
            saved = json.load(f)
        uuids = [g["uuid"] for g in self.of_type(self.events(run.run_dir), "hello")[0]["gpus"]]
        self.assertEqual(saved["gpus"], [{"i": 0, "uuid": uuids[0], "limit_w": 400.0},
                                         {"i": 1, "uuid": uuids[1], "limit_w": 400.0}])
        self.assertEqual(saved["pid"], run.pid)
        self.assertEqual(saved["host"], socket.gethostname())
        return run

    def test_sigterm_cancels_restores_and_stops_the_server(self):
        run = self.start_and_wait_for_measure(detach=True)
        state = self.state(run.run_dir)
        server_pgid = state["server_pgid"]
        self.assertTrue(group_alive(server_pgid))

        os.killpg(state["pgid"], signal.SIGTERM)  # as the extension cancels: the agent's process group
        self.wait_for(lambda: not pid_alive(run.pid), what="the agent to exit")

        events = self.events(run.run_dir)
        self.assert_well_formed(events)
        done = self.done(events)
        self.assertEqual((done["status"], done["caps_restored"]), ("cancelled", True))
        self.assertIn("SIGTERM", done["reason"])
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual(end["status"], "cancelled")
        # requests cut short say so; the ones finished before are kept
        requests = self.of_type(events, "request")
        self.assertTrue(any(r["ok"] for r in requests))
        self.assertTrue(any(not r["ok"] for r in requests))
        self.assertTrue(all(r["ok"] or "aborted (cancelled)" in r["error"] for r in requests))
        self.assertEqual([c["action"] for c in self.of_type(events, "cap")], ["set", "restore"])
        phases = [e["phase"] for e in self.of_type(events, "phase")]
        self.assertEqual(phases[-2:], ["restore", "server_stop"])

        self.assertEqual(self.sim_limits(), {"0": 400.0, "1": 400.0})
        self.assertFalse(os.path.exists(self.caps_file()))
        self.assertFalse(group_alive(server_pgid), "the server's process group outlived the agent")
        self.assertEqual(self.state(run.run_dir)["status"], "cancelled")

    def kill_agent_hard(self):
        run = self.start_and_wait_for_measure()
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=10)
        # no chance to clean up: the cap stays on the (simulated) hardware, the saved originals stay on disk
        self.assertEqual(self.sim_limits(), {"0": 150.0, "1": 150.0})
        self.assertTrue(os.path.exists(self.caps_file()))
        events = self.events(run.run_dir)
        self.assertFalse(self.of_type(events, "done"))
        return run

    def test_restore_caps_after_kill_9(self):
        self.kill_agent_hard()
        out = self.run_tool("restore-caps")
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual(result["status"], "restored")
        self.assertEqual(result["gpus"], [{"i": 0, "from_w": 150.0, "to_w": 400.0},
                                          {"i": 1, "from_w": 150.0, "to_w": 400.0}])
        self.assertEqual(self.sim_limits(), {"0": 400.0, "1": 400.0})
        self.assertFalse(os.path.exists(self.caps_file()))
        # nothing left to do the second time
        self.assertEqual(json.loads(self.run_tool("restore-caps").stdout)["status"], "nothing")

    def test_next_run_restores_after_kill_9(self):
        self.kill_agent_hard()
        # a run without caps, server or points: it must still restore what the dead agent left
        result = self.run_agent(self.make_job([], server=None, telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        restored = [e for e in self.of_type(events, "log") if "restored power limits" in e["msg"]]
        self.assertEqual(len(restored), 1)
        self.assertLess(restored[0]["seq"], self.of_type(events, "hello")[0]["seq"])
        self.assertEqual(self.sim_limits(), {"0": 400.0, "1": 400.0})
        self.assertFalse(os.path.exists(self.caps_file()))

    def test_live_agent_keeps_its_caps(self):
        # restore-caps must not undo the limits of an agent that is still running
        run = self.start_and_wait_for_measure()
        result = json.loads(self.run_tool("restore-caps").stdout)
        self.assertEqual(result["status"], "busy")
        self.assertEqual(self.sim_limits(), {"0": 150.0, "1": 150.0})
        os.killpg(run.pid, signal.SIGINT)
        run.proc.wait(timeout=30)
        self.assertEqual(run.proc.returncode, 0)
        self.assertEqual(self.done(self.events(run.run_dir))["status"], "cancelled")
        self.assertEqual(self.sim_limits(), {"0": 400.0, "1": 400.0})
