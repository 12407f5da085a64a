"""The `sample` subcommand: what the other nodes of a Slurm allocation run."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

from .helpers import AGENT, SIM_PROFILE_PATH as PROFILE


class SampleNodeTest(unittest.TestCase):
    def test_samples_until_the_run_on_node_0_has_ended(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(PROFILE) as f:
                profile = json.load(f)
            job = {"v": 1, "run_id": "r", "telemetry": {"source": "sim", "interval_s": 0.05, "idle_baseline_s": 0},
                   "gpus": {"indices": None, "count": 2}, "server": None, "sim": profile, "points": []}
            job_path = os.path.join(tmp, "job.json")
            with open(job_path, "w") as f:
                json.dump(job, f)
            node0 = os.path.join(tmp, "node-0")
            os.makedirs(node0)
            with open(os.path.join(node0, "state.json"), "w") as f:
                json.dump({"status": "running"}, f)
            env = dict(os.environ, WATTBENCH_HOME=os.path.join(tmp, "home"))
            process = subprocess.Popen([sys.executable, AGENT, "sample", "--job", job_path, "--run-dir",
                                        os.path.join(tmp, "node-1"), "--until-done", node0], env=env)
            time.sleep(1.0)
            self.assertIsNone(process.poll(), "it keeps sampling while node 0 runs")
            with open(os.path.join(node0, "state.json"), "w") as f:
                json.dump({"status": "done"}, f)
            self.assertEqual(process.wait(timeout=10), 0)
            with open(os.path.join(tmp, "node-1", "events.ndjson")) as f:
                events = [json.loads(line) for line in f]
            self.assertEqual([e["seq"] for e in events], list(range(len(events))))
            self.assertEqual(events[0]["type"], "hello")
            self.assertEqual(len(events[0]["gpus"]), 2)
            samples = [e for e in events if e["type"] == "sample"]
            self.assertGreater(len(samples), 10)
            self.assertTrue(all(len(s["gpus"]) == 2 and "e_j" in s["gpus"][0] for s in samples))
            self.assertEqual(events[-1]["type"], "done")
            self.assertEqual(events[-1]["status"], "ok")

    def test_stops_on_sigterm_and_says_cancelled(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(PROFILE) as f:
                profile = json.load(f)
            job_path = os.path.join(tmp, "job.json")
            with open(job_path, "w") as f:
                json.dump({"v": 1, "run_id": "r", "telemetry": {"source": "sim", "interval_s": 0.1, "idle_baseline_s": 0},
                           "gpus": {"indices": [1], "count": 1}, "server": None, "sim": profile, "points": []}, f)
            env = dict(os.environ, WATTBENCH_HOME=os.path.join(tmp, "home"))
            process = subprocess.Popen([sys.executable, AGENT, "sample", "--job", job_path, "--run-dir",
                                        os.path.join(tmp, "node-1")], env=env)
            # TERM once it is sampling (its handler is installed before the first event): a fixed sleep raced a
            # slow start on a busy machine, where the default handler killed it.
            events_file = os.path.join(tmp, "node-1", "events.ndjson")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (os.path.exists(events_file) and os.path.getsize(events_file) > 0):
                time.sleep(0.05)
            time.sleep(0.3)
            process.terminate()
            self.assertEqual(process.wait(timeout=10), 0)
            with open(os.path.join(tmp, "node-1", "events.ndjson")) as f:
                events = [json.loads(line) for line in f]
            self.assertEqual([g["index"] for g in events[0]["gpus"]], [1])
            self.assertEqual(events[-1]["status"], "cancelled")


if __name__ == "__main__":
    unittest.main()
