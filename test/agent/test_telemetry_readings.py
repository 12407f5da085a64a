"""What a power reading is and what happens when one fails: instant or the driver's 1 s average (each GPU
labelled), one GPU's failed reading (dropped alone, said once), a GPU NVML cannot open at start (auto falls
back to nvidia-smi, an explicit nvml says which GPU and why), and MIG mode (said). Against the stub
libnvidia-ml.so.1 (nvml_stub.c) and the fake nvidia-smi of test_telemetry.py."""

import ctypes
import json
import os
import unittest

from .helpers import AgentTestCase, command_point
from .test_telemetry import NvmlStubLibrary, write_fake_nvidia_smi


def _job_telemetry(source, interval_s=0.05):
    return {"source": source, "interval_s": interval_s, "idle_baseline_s": 0}


class NvmlReadingsTest(NvmlStubLibrary, AgentTestCase):
    OLD_DRIVER = True

    def setUp(self):
        super().setUp()
        self.lost = os.path.join(self.tmp, "lost-gpus")
        self.env.update({"WATTBENCH_NVML_LIB": self.lib, "NVML_STUB_STATE": os.path.join(self.tmp, "nvml-limits"),
                         "NVML_STUB_LOST": self.lost})
        # no nvidia-smi to fall back to unless a test gives one
        self.env["WATTBENCH_NVIDIA_SMI"] = os.path.join(self.tmp, "no-nvidia-smi")

    def probe(self, source="nvml", **env):
        out = self.run_tool("probe", "--source", source, env=dict(self.env, **env))
        return out, (json.loads(out.stdout) if out.stdout.strip() else None)

    def test_field_value_struct_matches_nvml_h(self):
        """The ctypes nvmlFieldValue_t has the C layout, member for member (nvml.h)."""
        from wattbench_agent.telemetry import nvml
        layout = (ctypes.c_ulonglong * 8)()
        ctypes.CDLL(self.lib).wattbenchStubFieldValueLayout(layout)
        fields = nvml._NvmlFieldValue
        self.assertEqual(list(layout), [ctypes.sizeof(fields)] + [getattr(fields, name).offset for name in (
            "fieldId", "scopeId", "timestamp", "latencyUsec", "valueType", "nvmlReturn", "value")])
        self.assertEqual(ctypes.sizeof(fields), 40)
        self.assertEqual((nvml.NVML_FI_DEV_POWER_AVERAGE, nvml.NVML_FI_DEV_POWER_INSTANT), (185, 186))

    def test_each_gpu_says_whether_its_power_is_instant_or_the_drivers_average(self):
        # GPU 0: Hopper with NVML_FI_DEV_POWER_INSTANT. GPU 1: Hopper without it (NOT_SUPPORTED):
        # nvmlDeviceGetPowerUsage, a 1 s average. GPU 2: Volta without it: nvmlDeviceGetPowerUsage is instant.
        stub = {"NVML_STUB_COUNT": "3", "NVML_STUB_CC": "9.0,9.0,7.0", "NVML_STUB_INSTANT": "1,0,0",
                "NVML_STUB_WOBBLE_W": "20"}
        out, hello = self.probe(**stub)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        gpus = hello["gpus"]
        self.assertEqual([g["power_reading"] for g in gpus], ["instant", "interval_average", "instant"])
        self.assertEqual([g.get("power_average_window_s") for g in gpus], [None, 1.0, None])
        self.assertEqual(hello["telemetry"]["power_reading"], "interval_average")  # not every GPU is instant
        self.assertEqual(hello["telemetry"]["power_average_window_s"], 1.0)
        self.assertIn("power_instant", hello["capabilities"])
        [warning] = hello["telemetry"]["warnings"]
        self.assertIn("GPU 1's power is nvmlDeviceGetPowerUsage, the driver's average over 1 s", warning)
        self.assertIn("NVML_FI_DEV_POWER_INSTANT: Not Supported", warning)

        self.env.update(stub)
        job = self.make_job([command_point("p", "sleep 0.7")], server=None, sim=None,
                            telemetry=_job_telemetry("nvml"), gpus={"indices": None, "count": 3})
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        self.assertEqual(events[0]["telemetry"]["power_reading"], "interval_average")
        samples = self.of_type(events, "sample")
        self.assertGreater(len(samples), 8)
        series = {i: [s["gpus"][i] for s in samples] for i in range(3)}
        # instantaneous readings follow the 0.5 s wobble (100 W +- 20 W); the 1 s average does not
        for i, base in ((0, 100.0), (2, 120.0)):
            watts = [g["p_w"] for g in series[i]]
            self.assertGreater(max(watts) - min(watts), 5.0, watts)
            self.assertTrue(all(base - 20.5 <= w <= base + 20.5 for w in watts), watts)
        self.assertEqual({g["p_w"] for g in series[1]}, {110.0})
        # with the instant reading comes the driver's 1 s average, where the GPU has one (not before Ampere)
        self.assertEqual({g.get("p_avg_w") for g in series[0]}, {100.0})
        self.assertTrue(all("p_avg_w" not in g for g in series[1] + series[2]))
        self.assertIn("e_j", series[0][-1])  # the energy counter stays

    def test_a_driver_without_field_values_falls_back_to_power_usage(self):
        out, hello = self.probe(WATTBENCH_NVML_LIB=self.old_lib, NVML_STUB_CC="9.0,8.0")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # nvml.h: averaged on Ampere except GA100 (8.0) and newer, instantaneous on GA100 and older
        self.assertEqual([g["power_reading"] for g in hello["gpus"]], ["interval_average", "instant"])
        self.assertEqual([g["mig"] for g in hello["gpus"]], [False, False])  # no nvmlDeviceGetMigMode: no MIG
        self.assertNotIn("power_instant", hello["capabilities"])
        self.assertIn("nvmlDeviceGetFieldValues failed: not in this driver's NVML", hello["telemetry"]["warnings"][0])

    def test_one_gpu_lost_mid_run_drops_only_its_readings_and_is_said_once(self):
        # (written whole with mv: a half-written file would bring the GPU back for a moment)
        command = "sleep 0.5; echo 1 > %s.new; mv %s.new %s; sleep 0.6; rm %s; sleep 0.5" % ((self.lost,) * 4)
        job = self.make_job([command_point("p", command)], server=None, sim=None, telemetry=_job_telemetry("nvml"))
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        self.assertEqual(self.done(events)["status"], "ok")
        samples = self.of_type(events, "sample")
        gpus = [[g["i"] for g in s["gpus"]] for s in samples]
        without = [s for s in samples if [g["i"] for g in s["gpus"]] == [0]]
        self.assertGreater(len(without), 5, gpus)  # GPU 0 kept its samples while GPU 1 was lost
        self.assertTrue(all(s["missing"] == [1] and s["gpus"][0]["p_w"] == 100.0 for s in without))
        self.assertEqual(gpus[0], [0, 1])
        self.assertEqual(gpus[-1], [0, 1])  # and GPU 1 came back
        self.assertTrue(all("missing" not in s for s in samples if len(s["gpus"]) == 2))
        warnings = [e["msg"] for e in self.of_type(events, "log", level="warn")]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("GPU 1 gave no power reading", warnings[0])
        self.assertIn("GPU is lost (NVML error 15)", warnings[0])
        back = [e["msg"] for e in self.of_type(events, "log", level="info") if "again" in e["msg"]]
        self.assertEqual(len(back), 1, back)
        self.assertTrue(back[0].startswith("GPU 1 gives power readings again (after %d samples" % len(without)),
                        back)
        self.assertFalse(self.of_type(events, "error"))

    def test_a_gpu_nvml_cannot_open_is_named_with_nvmls_error(self):
        for code, text in ((15, "GPU is lost"), (4, "Insufficient Permissions")):
            out, event = self.probe(NVML_STUB_HANDLE_ERROR="1:%d" % code)
            self.assertEqual(out.returncode, 1)
            self.assertIsNotNone(event, "probe printed no event: %s" % out.stderr)
            self.assertEqual((event["type"], event["where"], event["fatal"]), ("error", "telemetry", True), event)
            self.assertTrue(event["message"].startswith(
                "telemetry source nvml unavailable: NVML cannot open GPU 1: nvmlDeviceGetHandleByIndex_v2 failed: "
                "%s (NVML error %d)" % (text, code)), event["message"])
        self.assertIn("may not open /dev/nvidia1", event["message"])
        # and a run says the same in a fatal error, not an internal one
        self.env["NVML_STUB_HANDLE_ERROR"] = "1:15"
        job = self.make_job([command_point("p", "true")], server=None, sim=None, telemetry=_job_telemetry("nvml"))
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 1)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        [error] = self.of_type(events, "error")
        self.assertEqual((error["where"], error["fatal"]), ("telemetry", True))
        self.assertIn("NVML cannot open GPU 1: nvmlDeviceGetHandleByIndex_v2 failed: GPU is lost (NVML error 15)",
                      error["message"])

    def test_auto_falls_back_to_nvidia_smi_when_nvml_cannot_open_a_gpu_and_says_why(self):
        smi, smi_state = write_fake_nvidia_smi(self.tmp)
        self.env.update({"WATTBENCH_NVIDIA_SMI": smi, "FAKE_SMI_STATE": smi_state, "NVML_STUB_HANDLE_ERROR": "1:15"})
        job = self.make_job([command_point("p", "sleep 0.3")], server=None, sim=None, telemetry=_job_telemetry("auto"))
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        hello = events[0]
        self.assertEqual(hello["telemetry"]["source"], "nvidia-smi")
        why = ("NVML not used (NVML cannot open GPU 1: nvmlDeviceGetHandleByIndex_v2 failed: GPU is lost "
               "(NVML error 15)): telemetry.source auto falls back to nvidia-smi")
        self.assertEqual(hello["telemetry"]["warnings"], [why])
        self.assertEqual([e["msg"] for e in self.of_type(events, "log", level="warn")], [why])
        self.assertGreater(len(self.of_type(events, "sample")), 2)
        self.assertEqual(self.done(events)["status"], "ok")

    def test_mig_mode_is_detected_and_said(self):
        self.env.update({"NVML_STUB_MIG": "1,0"})
        out, hello = self.probe()
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual([g["mig"] for g in hello["gpus"]], [True, False])
        mig = ("GPU 0 is in MIG mode: its power and energy are the whole GPU's, every MIG instance on it included "
               "(MIG instances have no power reading of their own)")
        self.assertEqual(hello["telemetry"]["warnings"], [mig])
        job = self.make_job([command_point("p", "sleep 0.3")], server=None, sim=None, telemetry=_job_telemetry("nvml"))
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assertEqual([e["msg"] for e in self.of_type(events, "log", level="warn")], [mig])
        gpu0 = self.of_type(events, "sample")[-1]["gpus"][0]
        self.assertEqual(gpu0["p_w"], 100.0)
        self.assertNotIn("util", gpu0)  # NVML has no utilisation for a MIG-enabled GPU
        # a run of GPU 1 alone is not warned about GPU 0
        job = self.make_job([command_point("p", "true")], server=None, sim=None, telemetry=_job_telemetry("nvml"),
                            gpus={"indices": [1], "count": 1})
        events = self.events(self.run_agent(job).run_dir)
        self.assertNotIn("warnings", events[0]["telemetry"])
        self.assertEqual([g["mig"] for g in events[0]["gpus"]], [False])


class NvidiaSmiReadingsTest(AgentTestCase):
    def setUp(self):
        super().setUp()
        self.smi, self.smi_state = write_fake_nvidia_smi(self.tmp)
        self.env.update({"WATTBENCH_NVIDIA_SMI": self.smi, "FAKE_SMI_STATE": self.smi_state,
                         "WATTBENCH_NVML_LIB": os.path.join(self.tmp, "no-such-libnvidia-ml.so.1")})

    def calls(self):
        with open(os.path.join(self.smi_state, "calls")) as f:
            return f.read().splitlines()

    def run_job(self, command):
        job = self.make_job([command_point("p", command)], server=None, sim=None,
                            telemetry=_job_telemetry("nvidia-smi", 0.1))
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        return events

    def test_power_is_power_draw_instant_with_the_drivers_average_beside_it(self):
        events = self.run_job("sleep 0.6")
        hello = events[0]
        self.assertEqual(hello["telemetry"], {"source": "nvidia-smi", "interval_s": 0.1, "power_reading": "instant"})
        self.assertEqual([(g["power_reading"], g["mig"]) for g in hello["gpus"]],
                         [("instant", False), ("instant", False)])
        last = self.of_type(events, "sample")[-1]["gpus"]
        self.assertEqual([(g["p_w"], g["p_avg_w"]) for g in last], [(80.5, 79.25), (90.5, 89.25)])
        stream = [c for c in self.calls() if "-lms" in c]
        self.assertEqual(len(stream), 1)
        self.assertIn("power.draw.instant", stream[0])

    def test_a_driver_without_power_draw_instant_falls_back_to_power_draw_labelled_as_averaged(self):
        self.env.update({"FAKE_SMI_OLD": "1", "FAKE_SMI_CC": "9.0 7.0"})
        events = self.run_job("sleep 0.6")
        hello = events[0]
        # Hopper: power.draw is the 1 s average; Volta: it is the instant power
        self.assertEqual([(g["power_reading"], g.get("power_average_window_s")) for g in hello["gpus"]],
                         [("interval_average", 1.0), ("instant", None)])
        self.assertEqual((hello["telemetry"]["power_reading"], hello["telemetry"]["power_average_window_s"]),
                         ("interval_average", 1.0))
        self.assertEqual(hello["telemetry"]["warnings"], [
            "GPU 0's power is nvidia-smi's power.draw, the driver's average over 1 s (this nvidia-smi (driver "
            "550.90.07) does not know power.draw.instant)"])
        last = self.of_type(events, "sample")[-1]["gpus"]
        self.assertEqual([g["p_w"] for g in last], [79.25, 90.5])
        self.assertTrue(all("p_avg_w" not in g for g in last))
        calls = self.calls()
        # refused twice at start-up (one unknown field at a time), then never asked again
        self.assertIn("power.draw.instant", calls[0])
        self.assertNotIn("power.draw.instant", calls[1])
        self.assertIn("power.draw.average", calls[1])
        self.assertTrue(all("power.draw.instant" not in c and "power.draw.average" not in c for c in calls[2:]))

    def test_mig_mode_is_read_from_mig_mode_current(self):
        self.env.update({"FAKE_SMI_MIG": "Disabled Enabled"})
        out = self.run_tool("probe", "--source", "nvidia-smi")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        hello = json.loads(out.stdout)
        self.assertEqual([g["mig"] for g in hello["gpus"]], [False, True])
        self.assertEqual(hello["telemetry"]["warnings"], [
            "GPU 1 is in MIG mode: its power is the whole GPU's, every MIG instance on it included (MIG instances "
            "have no power reading of their own)"])

    def test_one_gpu_lost_mid_run_drops_only_its_readings_and_is_said_once(self):
        lost = os.path.join(self.smi_state, "lost")
        events = self.run_job("sleep 0.6; echo 1 > %s.new; mv %s.new %s; sleep 1.2; rm %s; sleep 0.6" % ((lost,) * 4))
        samples = self.of_type(events, "sample")
        without = [s for s in samples if [g["i"] for g in s["gpus"]] == [0]]
        self.assertGreater(len(without), 3, [[g["i"] for g in s["gpus"]] for s in samples])
        self.assertTrue(all(s["missing"] == [1] and s["gpus"][0]["p_w"] == 80.5 for s in without))
        self.assertEqual([g["i"] for g in samples[-1]["gpus"]], [0, 1])
        warnings = [e["msg"] for e in self.of_type(events, "log", level="warn")]
        back = [e for e in self.of_type(events, "log", level="info") if "again" in e["msg"]]
        # Said once each time the GPU stops reading, and once each time it reads again (on a busy machine the
        # fake's rows can come late enough to count as one more loss): never once per tick.
        self.assertGreaterEqual(len(warnings), 1)
        self.assertEqual(len(warnings), len(back), (warnings, back))
        self.assertLess(len(warnings), 4, warnings)
        self.assertTrue(all("GPU 1 gave no power reading (nvidia-smi gave no reading for GPU 1)" in w for w in warnings))


if __name__ == "__main__":
    unittest.main()
