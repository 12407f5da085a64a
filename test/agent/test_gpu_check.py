"""`npm run gpu-check` (scripts/gpu-check.sh + gpu_check_report.py) against the NVML stub: a GPU whose power
follows the stand-in load through the stub's load file and whose energy counter updates every 100 ms. The
expected figures follow from the stub's physics (GPU 0 draws 100 W + the load, at most its limit), not from
the report's code."""

import json
import os
import subprocess
import sys

from .helpers import AGENT, AgentTestCase
from .test_telemetry import NvmlStubLibrary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "gpu-check.sh")
LOAD = os.path.join(ROOT, "scripts", "gpu_check_load.py")

KEYS = ["run_dir", "driver", "gpu", "catalog", "power_reading", "energy_counter", "counter_update_period_ms",
        "sampling_interval_s", "sampling_rate_hz", "idle_w", "idle_after_w", "load_w", "loaded_w", "energy_counter_j",
        "energy_instant_integral_j", "energy_average_integral_j", "power_cap", "verdict"]


def parse(stdout):
    lines = [line.split(": ", 1) for line in stdout.strip().splitlines()]
    return [k for k, _ in lines], dict(lines)


def first_number(text):
    return float(text.split()[0])


class GpuCheckTest(NvmlStubLibrary, AgentTestCase):
    def setUp(self):
        super().setUp()
        self.env.update({"WATTBENCH_NVML_LIB": self.lib, "NVML_STUB_STATE": os.path.join(self.tmp, "limits"),
                         "NVML_STUB_COUNT": "1", "NVML_STUB_LOAD_FILE": os.path.join(self.tmp, "load"),
                         "NVML_STUB_ENERGY_PERIOD_MS": "100"})

    def gpu_check(self, stub_watts, *extra):
        out = os.path.join(self.tmp, "out")
        args = ["bash", SCRIPT, "--out", out, "--agent", AGENT, "--seconds", "1.5", "--interval", "0.02",
                "--baseline", "0.6", "--idle", "0.6",
                "--workload-cmd", "%s %s --stub-watts %g" % (sys.executable, LOAD, stub_watts)] + list(extra)
        return subprocess.run(args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120)

    def test_reports_every_figure_of_a_loaded_and_capped_gpu(self):
        done = self.gpu_check(150)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        keys, values = parse(done.stdout)
        self.assertEqual(keys, KEYS)
        self.assertEqual(values["verdict"], "PASS")
        self.assertEqual(values["driver"], "550.54.stub")
        self.assertEqual(values["gpu"], "0 NVIDIA Stub GPU 0 (81920 MiB)")
        self.assertEqual(values["catalog"], "not in catalog")
        self.assertEqual(values["power_reading"], "instant")
        # the stub's counter moves every 100 ms; polling it finds that period
        self.assertAlmostEqual(first_number(values["counter_update_period_ms"]), 100.0, delta=2.0)
        # asked for 50 Hz
        self.assertGreater(first_number(values["sampling_rate_hz"]), 25.0)
        # idle: GPU 0's 100 W; loads: 100 W + duty × 150 W
        self.assertAlmostEqual(first_number(values["idle_w"]), 100.0, delta=0.5)
        self.assertAlmostEqual(first_number(values["idle_after_w"]), 100.0, delta=0.5)
        loads = dict(part.split(" ") for part in values["load_w"].split(", "))
        for point, watts in (("load-30", 145.0), ("load-60", 190.0), ("load-100", 250.0)):
            self.assertAlmostEqual(float(loads[point]), watts, delta=3.0, msg=point)
        self.assertAlmostEqual(first_number(values["loaded_w"]), 250.0, delta=3.0)
        # the counter, against the instant power's integral (the stub's counter is that integral, in 100 ms steps)
        counter = first_number(values["energy_counter_j"])
        instant = first_number(values["energy_instant_integral_j"])
        self.assertLess(abs(instant - counter) / counter, 0.02)
        # cap: 60 % of the stub's 300 W default limit = 180 W (inside its 100-350 W range), then put back
        cap = values["power_cap"]
        self.assertTrue(cap.startswith("permitted: 300.0 -> 180 W, capped mean 18"), cap)
        self.assertTrue(values["power_cap"].endswith("restored to 300.0 W: yes"), values["power_cap"])
        with open(self.env["NVML_STUB_STATE"]) as f:
            self.assertEqual(f.read().split(), ["300000"])

        # the run directory is a store run: meta.json names it, events.ndjson holds the whole stream
        run_dir = values["run_dir"]
        with open(os.path.join(run_dir, "meta.json")) as f:
            meta = json.load(f)
        self.assertEqual((meta["run_id"], meta["status"], meta["config_name"]),
                         (os.path.basename(run_dir), "ok", "gpu-check"))
        self.assertEqual([p["id"] for p in meta["points"]],
                         ["load-30", "load-60", "load-100", "load-100-capped", "idle"])
        self.assertEqual(meta["points"][3]["power_cap_w"], 180.0)
        events = self.events(run_dir)
        self.assert_well_formed(events)
        # the energy figure is the stream's own counter difference
        e = [g["e_j"] for s in events if s["type"] == "sample" for g in s["gpus"] if "e_j" in g]
        self.assertAlmostEqual(counter, e[-1] - e[0], delta=0.1)

    def test_a_gpu_that_does_not_draw_more_under_load_fails(self):
        done = self.gpu_check(0)
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        _, values = parse(done.stdout)
        self.assertTrue(values["verdict"].startswith("FAIL (loaded power 100.0 W not 10% above idle 100.0 W"),
                        values["verdict"])

    def test_without_torch_and_without_a_workload_it_says_so(self):
        probe = subprocess.run([sys.executable, "-c", "import torch"], stderr=subprocess.DEVNULL)
        if probe.returncode == 0:
            self.skipTest("this machine has PyTorch")
        env = dict(self.env, PATH=os.path.dirname(sys.executable) + os.pathsep + self.env.get("PATH", ""))
        done = subprocess.run(["bash", SCRIPT, "--out", os.path.join(self.tmp, "out"), "--agent", AGENT], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        self.assertEqual(done.returncode, 2)
        self.assertIn("gpu-check: PyTorch is not installed", done.stderr)
