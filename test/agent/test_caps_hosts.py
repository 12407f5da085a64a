"""Saved power limits belong to one host and name GPUs by UUID: nodes sharing a home (NFS) each restore
only their own; two agents starting at once on one host save the true original; a GPU that cannot be
restored does not keep the others capped."""

import json
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest
from unittest import mock

from .helpers import SIM_PROFILE, AgentTestCase, http_point

from wattbench_agent import caps
from wattbench_agent.caps import CapKeeper, restore_leftover_caps
from wattbench_agent.telemetry.base import TelemetryError
from wattbench_agent.telemetry.sim import SimTelemetry


def long_capped_point(cap_w):
    return http_point("long", power_cap_w=cap_w, concurrency=2, num_prompts=500, max_tokens=200,
                      dataset={"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 8},
                               "output_tokens": {"dist": "fixed", "mean": 200}})


def read_limits(sim_dir):
    try:
        with open(os.path.join(sim_dir, "limits.json")) as f:
            return json.load(f)
    except OSError:
        return {}


class SharedHomeTest(AgentTestCase):
    """Two nodes (hostnames node-a and node-b, each its own simulated GPUs) with one WATTBENCH_HOME."""

    def node_env(self, node):
        return dict(self.env, WATTBENCH_TEST_HOSTNAME=node, WATTBENCH_SIM_DIR=os.path.join(self.tmp, "sim-" + node))

    def saved_file(self, node):
        return os.path.join(self.home, "caps-saved", node + ".json")

    def start_capped(self, node, cap_w):
        saved_env = self.env
        self.env = self.node_env(node)
        try:
            run = self.start_agent(self.make_job([long_capped_point(cap_w)],
                                                 telemetry={"source": "sim", "idle_baseline_s": 0}))
        finally:
            self.env = saved_env
        self.wait_for_event(run.run_dir, lambda e: e["type"] == "request", what="%s's first request" % node)
        return run

    def test_each_node_restores_only_its_own_limits(self):
        run_a = self.start_capped("node-a", 150)
        run_b = self.start_capped("node-b", 200)
        sim_a, sim_b = self.node_env("node-a")["WATTBENCH_SIM_DIR"], self.node_env("node-b")["WATTBENCH_SIM_DIR"]
        self.assertEqual(read_limits(sim_a), {"0": 150.0, "1": 150.0})
        self.assertEqual(read_limits(sim_b), {"0": 200.0, "1": 200.0})
        for run in (run_a, run_b):  # both die hard: both files stay
            run.proc.send_signal(signal.SIGKILL)
            run.proc.wait(timeout=10)
        self.assertTrue(os.path.exists(self.saved_file("node-a")))
        self.assertTrue(os.path.exists(self.saved_file("node-b")))
        with open(self.saved_file("node-b")) as f:
            saved = json.load(f)
        self.assertEqual(saved["host"], "node-b")
        self.assertTrue(all(g["uuid"].startswith("GPU-SIM-") for g in saved["gpus"]))

        out = self.run_tool("restore-caps", env=self.node_env("node-b"))
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual((result["status"], result["host"], result["errors"]), ("restored", "node-b", []))
        self.assertEqual(result["gpus"], [{"i": 0, "from_w": 200.0, "to_w": 400.0},
                                          {"i": 1, "from_w": 200.0, "to_w": 400.0}])
        self.assertEqual(read_limits(sim_b), {"0": 400.0, "1": 400.0})
        self.assertEqual(read_limits(sim_a), {"0": 150.0, "1": 150.0}, "node-b touched node-a's limits")
        self.assertTrue(os.path.exists(self.saved_file("node-a")))
        self.assertFalse(os.path.exists(self.saved_file("node-b")))
        self.assertEqual(json.loads(self.run_tool("restore-caps", env=self.node_env("node-b")).stdout)["status"],
                         "nothing")

        # node-a's next run restores node-a's
        saved_env = self.env
        self.env = self.node_env("node-a")
        try:
            result = self.run_agent(self.make_job([], server=None, telemetry={"source": "sim", "idle_baseline_s": 0}))
        finally:
            self.env = saved_env
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(read_limits(sim_a), {"0": 400.0, "1": 400.0})
        self.assertFalse(os.path.exists(self.saved_file("node-a")))

    def test_an_older_agents_file_of_another_host_is_left_alone(self):
        legacy = os.path.join(self.home, "caps-saved.json")
        os.makedirs(self.home, exist_ok=True)
        with open(legacy, "w") as f:
            json.dump({"v": 1, "pid": 999999, "host": "node-a", "source": "sim", "saved_at": 0,
                       "sim_dir": os.path.join(self.tmp, "sim-node-a"), "sim_profile": SIM_PROFILE,
                       "gpus": [{"i": 0, "limit_w": 400.0}]}, f)
        result = json.loads(self.run_tool("restore-caps", env=self.node_env("node-b")).stdout)
        self.assertEqual(result["status"], "nothing")
        self.assertTrue(os.path.exists(legacy))
        result = json.loads(self.run_tool("restore-caps", env=self.node_env("node-a")).stdout)
        self.assertEqual(result["status"], "restored")
        self.assertFalse(os.path.exists(legacy))


class SlowSim(SimTelemetry):
    """A simulated GPU whose limit takes `delay` seconds to read (an NVML call under load)."""

    delay = 0.0

    def get_limit_w(self, index):
        time.sleep(self.delay)
        return super().get_limit_w(index)


class FailingRestoreSim(SimTelemetry):
    """Setting GPU 0's limit back to 400 W fails (the driver refuses)."""

    def set_limit_w(self, index, watts):
        if index == 0 and watts == 400.0:
            raise TelemetryError("GPU 0: Insufficient Permissions")
        super().set_limit_w(index, watts)


class InProcessCapsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wattbench-caps-test-")
        self.sim_dir = os.path.join(self.tmp, "sim")
        patcher = mock.patch.dict(os.environ, {"WATTBENCH_HOME": os.path.join(self.tmp, "home"),
                                               "WATTBENCH_TEST_HOSTNAME": "node-x"})
        patcher.start()
        self.addCleanup(patcher.stop)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def sim(self, cls=SimTelemetry):
        telemetry = cls(SIM_PROFILE, self.sim_dir)
        self.addCleanup(telemetry.close)
        return telemetry

    def test_two_agents_starting_at_once_save_the_true_original(self):
        # Agent "slow" starts first but reads the limits slowly; agent "fast" sets its cap meanwhile. Both keep
        # their cap a while, then restore. Whatever each saved as "original" must be the true original.
        outcome = {}

        def agent(name, delay, start_after):
            telemetry = self.sim(SlowSim)
            telemetry.delay = delay
            keeper = CapKeeper()
            time.sleep(start_after)
            try:
                keeper.apply(telemetry, [0, 1], 150.0)
            except TelemetryError as e:
                outcome[name] = ("refused", str(e))
                return
            outcome[name] = ("capped", dict(keeper.originals))
            time.sleep(1.0)
            keeper.restore(telemetry)

        threads = [threading.Thread(target=agent, args=("slow", 0.3, 0.0)),
                   threading.Thread(target=agent, args=("fast", 0.0, 0.05))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        capped = {name: originals for name, (what, originals) in outcome.items() if what == "capped"}
        self.assertTrue(capped, outcome)
        for name, originals in capped.items():
            self.assertEqual(originals, {0: 400.0, 1: 400.0}, "%s saved a capped limit as original" % name)
        self.assertEqual(read_limits(self.sim_dir), {"0": 400.0, "1": 400.0}, outcome)

    def test_one_gpu_that_cannot_be_restored_does_not_keep_the_others_capped(self):
        telemetry = self.sim(FailingRestoreSim)
        keeper = CapKeeper()
        keeper.apply(telemetry, [0, 1], 150.0)
        with self.assertRaises(TelemetryError) as raised:
            keeper.restore(telemetry)
        self.assertEqual(read_limits(self.sim_dir), {"0": 150.0, "1": 400.0})
        self.assertIn("GPU 0", str(raised.exception))
        self.assertEqual([f["i"] for f in raised.exception.failures], [0])
        self.assertEqual(raised.exception.changes, [{"i": 1, "from_w": 150.0, "to_w": 400.0}])
        with open(keeper.path) as f:
            saved = json.load(f)
        self.assertEqual([(g["i"], g["limit_w"]) for g in saved["gpus"]], [(0, 400.0)], "only GPU 0 stays saved")

    def test_restore_caps_restores_every_gpu_it_can_and_reports_the_rest(self):
        telemetry = self.sim()
        keeper = CapKeeper()
        keeper.apply(telemetry, [0, 1], 150.0)
        with open(keeper.path) as f:
            record = json.load(f)
        record["pid"], record["pid_start"] = 999999999, 1  # an agent that died hard
        with open(keeper.path, "w") as f:
            json.dump(record, f)
        with mock.patch.object(caps, "open_telemetry", lambda source, profile, sim_dir:
                               FailingRestoreSim(SIM_PROFILE, sim_dir)):
            result = restore_leftover_caps()
        self.assertEqual(result["status"], "failed")
        self.assertEqual(result["gpus"], [{"i": 1, "from_w": 150.0, "to_w": 400.0}])
        self.assertEqual([(e["i"], e["uuid"]) for e in result["errors"]], [(0, record["gpus"][0]["uuid"])])
        self.assertIn("Insufficient Permissions", result["errors"][0]["message"])
        self.assertIn("Insufficient Permissions", result["message"])
        self.assertEqual(read_limits(self.sim_dir), {"0": 150.0, "1": 400.0})
        # the next try, with a driver that lets it, restores what is left
        result = restore_leftover_caps()
        self.assertEqual((result["status"], result["gpus"]), ("restored", [{"i": 0, "from_w": 150.0, "to_w": 400.0}]))
        self.assertFalse(os.path.exists(keeper.path))

    def test_gpus_are_found_by_uuid_not_index(self):
        telemetry = self.sim()
        keeper = CapKeeper()
        keeper.apply(telemetry, [1], 150.0)
        with open(keeper.path) as f:
            record = json.load(f)
        record["pid"], record["pid_start"] = 999999999, 1
        record["gpus"][0]["i"] = 0  # after a reboot the same GPU has another index: its UUID still names it
        with open(keeper.path, "w") as f:
            json.dump(record, f)
        result = restore_leftover_caps()
        self.assertEqual(result["gpus"], [{"i": 1, "from_w": 150.0, "to_w": 400.0}])
        self.assertEqual(read_limits(self.sim_dir), {"1": 400.0})


if __name__ == "__main__":
    unittest.main()
