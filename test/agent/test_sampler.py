"""The sampling thread: a GPU without a reading is left out of a sample (said once, and once when it is
back), an unexpected error in a tick is reported and sampling goes on, a thread that cannot go on says so
in a fatal error, and the backend's start-up warnings about the run's GPUs become `log` warnings."""

import json
import os
import shutil
import tempfile
import time
import unittest

from . import helpers  # noqa: F401  (puts agent/ on sys.path)

from wattbench_agent.events import EventWriter
from wattbench_agent.sampler import Sampler
from wattbench_agent.telemetry.base import Telemetry


class ScriptedTelemetry(Telemetry):
    """Answers sample() from a list of callables, one per tick (the last one repeats)."""

    source = "scripted"

    def __init__(self, script):
        super().__init__()
        self.script = script
        self.ticks = 0

    def sample(self, indices):
        step = self.script[min(self.ticks, len(self.script) - 1)]
        self.ticks += 1
        return time.time(), step(indices)


def good(indices):
    return [{"i": i, "p_w": 100.0 + i} for i in indices]


class SamplerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wattbench-sampler-test-")
        self.path = os.path.join(self.tmp, "events.ndjson")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def events(self):
        with open(self.path) as f:
            return [json.loads(line) for line in f]

    def sample_for(self, telemetry, seconds, events=None):
        events = events or EventWriter(self.path, mirror_stdout=False)
        sampler = Sampler(telemetry, [0, 1], 0.01, events, lambda: None)
        sampler.start()
        time.sleep(seconds)
        sampler.stop()
        events.close()
        return sampler

    def test_an_unexpected_error_in_a_tick_is_reported_once_and_sampling_goes_on(self):
        def broken(indices):
            raise ValueError("a reading nobody expected")
        sampler = self.sample_for(ScriptedTelemetry([good, broken, broken, broken, good]), 0.4)
        events = self.events()
        [error] = [e for e in events if e["type"] == "error"]
        self.assertEqual((error["where"], error["fatal"]), ("sampler", False))
        self.assertEqual(error["message"],
                         "a GPU sampling tick failed: ValueError: a reading nobody expected; sampling goes on")
        self.assertIn("Traceback", error["detail"])
        samples = [e for e in events if e["type"] == "sample"]
        self.assertGreater(len([s for s in samples if s["seq"] > error["seq"]]), 5)  # it went on
        self.assertIsNone(sampler.failure)

    def test_rows_without_a_reading_are_left_out_and_said_once(self):
        def gpu1_fails(indices):
            return [{"i": 0, "p_w": 100.0}, {"i": 1, "error": "it fell off the bus"}]

        def gpu1_silent(indices):
            return [{"i": 0, "p_w": 100.0}, {"i": 1, "p_w": None}]

        def nothing(indices):
            return [{"i": i, "error": "no"} for i in indices]
        telemetry = ScriptedTelemetry([good, gpu1_fails, gpu1_fails, good, gpu1_silent, nothing, good])
        self.sample_for(telemetry, 0.3)
        events = self.events()
        samples = [e for e in events if e["type"] == "sample"]
        self.assertEqual([[g["i"] for g in s["gpus"]] for s in samples[:6]], [[0, 1], [0], [0], [0, 1], [0], [0, 1]])
        self.assertEqual([s.get("missing") for s in samples[:6]], [None, [1], [1], None, [1], None])
        self.assertEqual(len(samples), telemetry.ticks - 1)  # the tick without any reading wrote no sample
        logs = [(e["level"], e["msg"]) for e in events if e["type"] == "log"]
        self.assertEqual(logs[:4], [
            ("warn", "GPU 1 gave no power reading (it fell off the bus): it is left out of the samples until it "
                     "reads again, the other GPUs are still sampled"),
            ("info", "GPU 1 gives power readings again (after 2 samples without)"),
            ("warn", "GPU 1 gave no power reading (no power reading): it is left out of the samples until it "
                     "reads again, the other GPUs are still sampled"),
            ("warn", "GPU 0 gave no power reading (no): it is left out of the samples until it reads again, the "
                     "other GPUs are still sampled")])
        self.assertFalse([e for e in events if e["type"] == "error"])

    def test_a_sampler_that_cannot_go_on_says_so_in_a_fatal_error(self):
        class CannotReport(EventWriter):
            def emit(self, event_type, t=None, **fields):
                if event_type == "error" and not fields.get("fatal"):
                    raise OSError("no space left on device")
                return super().emit(event_type, t, **fields)

        def broken(indices):
            raise KeyError("p_w")
        sampler = self.sample_for(ScriptedTelemetry([good, broken]), 0.2,
                                  CannotReport(self.path, mirror_stdout=False))
        self.assertEqual(sampler.failure, "OSError: no space left on device")
        self.assertFalse(sampler.is_alive())
        [error] = [e for e in self.events() if e["type"] == "error"]
        self.assertEqual((error["where"], error["fatal"]), ("sampler", True))
        self.assertEqual(error["message"],
                         "GPU sampling stopped: OSError: no space left on device; no more samples are taken")

    def test_start_up_warnings_of_the_run_gpus_become_log_warnings(self):
        telemetry = ScriptedTelemetry([good])
        telemetry.warnings = ["NVML not used (it broke): telemetry.source auto falls back to nvidia-smi"]
        telemetry.gpu_warnings = {1: ["GPU 1 is in MIG mode"], 5: ["GPU 5 is not in this run"]}
        self.sample_for(telemetry, 0.05)
        logs = [e["msg"] for e in self.events() if e["type"] == "log"]
        self.assertEqual(logs, telemetry.warnings + ["GPU 1 is in MIG mode"])
        self.assertEqual(telemetry.power_fields([{"index": 0}, {"index": 1}]), {
            "power_reading": "instant", "warnings": telemetry.warnings + ["GPU 1 is in MIG mode"]})


if __name__ == "__main__":
    unittest.main()
