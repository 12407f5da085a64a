"""The real-hardware telemetry paths against stand-ins: NVML through a stub libnvidia-ml.so.1 built
from C, nvidia-smi through a fake shell script, and `auto` when there is nothing at all."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from .helpers import AgentTestCase, command_point, http_point

HERE = os.path.dirname(os.path.abspath(__file__))

# A fake nvidia-smi: two GPUs, power limits kept in $FAKE_SMI_STATE/limit<i>, `-lms` streams like the real one.
# GPU i draws 80.50 + 10 i W at this instant and averaged 79.25 + 10 i W over the last second. As
# `nvidia-smi --help-query-gpu` documents: power.draw is that 1 s average on Ampere and newer (compute capability
# from 8.0; FAKE_SMI_CC, default "9.0 9.0") and the instant power on older GPUs; power.draw.average exists only
# above 8.0 (Ampere except GA100); power.draw.instant always. FAKE_SMI_OLD=1: a driver from before R535 that
# does not know power.draw.instant nor power.draw.average and, like the real one, refuses the whole query with
# 'Field "NAME" is not a valid field to query.' (on stdout, non-zero exit). FAKE_SMI_MIG: mig.mode.current per
# GPU ("Enabled Disabled"; default Disabled, [N/A] before Ampere). $FAKE_SMI_STATE/lost lists GPUs that have
# fallen off the bus: a line saying so replaces their row, and a one-shot query then exits 15.
FAKE_NVIDIA_SMI = r"""#!/bin/sh
state="${FAKE_SMI_STATE:?}"
echo "$*" >> "$state/calls"
fields=""; index=""; limit=""; period=""
while [ $# -gt 0 ]; do
  case "$1" in
    --query-gpu=*) fields="${1#--query-gpu=}" ;;
    -i) index="$2"; shift ;;
    -pl) limit="$2"; shift ;;
    -lms) period="$2"; shift ;;
  esac
  shift
done
if [ -n "$limit" ]; then
  echo "$limit" > "$state/limit$index"
  echo "Power limit for GPU $index was set to $limit W from previous value."
  exit 0
fi
if [ -n "$FAKE_SMI_OLD" ]; then
  old_ifs="$IFS"; IFS=","
  for f in $fields; do
    case "$f" in
      power.draw.instant|power.draw.average) echo "Field \"$f\" is not a valid field to query."; echo; exit 2 ;;
    esac
  done
  IFS="$old_ifs"
fi
nth() { n="$1"; shift; eval "v=\${$((n + 1)):-}"; echo "$v"; }
current_limit() { if [ -f "$state/limit$1" ]; then cat "$state/limit$1"; else echo 250.00; fi; }
lost() { [ -f "$state/lost" ] && grep -qx "$1" "$state/lost"; }
status=0
row() {
  if lost "$1"; then
    echo "Unable to determine the device handle for GPU 0000:0$1:00.0: GPU is lost." \
      "Reboot the system to recover this GPU"
    status=15
    return
  fi
  cc="$(nth "$1" ${FAKE_SMI_CC:-9.0 9.0})"; major="${cc%%.*}"
  instant="$((80 + $1 * 10)).50"; average="$((79 + $1 * 10)).25"
  if [ "$major" -ge 8 ]; then
    draw="$average"; mig="$(nth "$1" ${FAKE_SMI_MIG:-Disabled Disabled})"
  else
    draw="$instant"; mig="[N/A]"
  fi
  if [ "$cc" = "8.0" ] || [ "$major" -lt 8 ]; then average="[N/A]"; fi
  out=""; old_ifs="$IFS"; IFS=","
  for f in $fields; do
    case "$f" in
      index) v="$1" ;; name) v="NVIDIA Fake A100" ;; uuid) v="GPU-fake-$1" ;; memory.total) v=40960 ;;
      power.draw) v="$draw" ;; power.draw.instant) v="$instant" ;; power.draw.average) v="$average" ;;
      power.limit) v="$(current_limit "$1")" ;; compute_cap) v="$cc" ;; mig.mode.current) v="$mig" ;;
      power.default_limit) v=250.00 ;; power.min_limit) v=100.00 ;; power.max_limit) v=300.00 ;;
      utilization.gpu) v=33 ;; utilization.memory) v=12 ;; clocks.sm) v=1410 ;;
      temperature.gpu) v=41 ;; driver_version) v=550.90.07 ;; *) v="[N/A]" ;;
    esac
    out="$out${out:+, }$v"
  done
  IFS="$old_ifs"
  echo "$out"
}
if [ -n "$period" ]; then
  while :; do row 0; row 1; sleep 0.1; done
fi
row 0; row 1
exit $status
"""


def build_nvml_stub(directory, *defines):
    """Compiles nvml_stub.c into DIRECTORY/libnvidia-ml.so.1 (with -D for each of `defines`); skips the test
    class when there is no C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        raise unittest.SkipTest("no C compiler (cc, gcc or clang) to build the stub libnvidia-ml.so.1")
    lib = os.path.join(directory, "libnvidia-ml.so.1")
    subprocess.run([compiler, "-shared", "-fPIC", "-O1"] + ["-D" + d for d in defines]
                   + ["-o", lib, os.path.join(HERE, "nvml_stub.c"), "-lm"], check=True)
    return lib


class NvmlStubLibrary:
    """Mixin: the stub NVML built once per test class as cls.lib, and with OLD_DRIVER also as cls.old_lib, a
    driver from before nvmlDeviceGetFieldValues and nvmlDeviceGetMigMode (-DSTUB_OLD_DRIVER)."""

    OLD_DRIVER = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lib_dir = tempfile.mkdtemp(prefix="wattbench-nvml-stub-")
        try:
            cls.lib = build_nvml_stub(cls.lib_dir)
            if cls.OLD_DRIVER:
                os.mkdir(os.path.join(cls.lib_dir, "old"))
                cls.old_lib = build_nvml_stub(os.path.join(cls.lib_dir, "old"), "STUB_OLD_DRIVER")
        except BaseException:
            shutil.rmtree(cls.lib_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.lib_dir, ignore_errors=True)
        super().tearDownClass()


def write_fake_nvidia_smi(directory):
    """The fake nvidia-smi above as DIRECTORY/nvidia-smi, and its state directory DIRECTORY/smi-state."""
    smi = os.path.join(directory, "nvidia-smi")
    with open(smi, "w") as f:
        f.write(FAKE_NVIDIA_SMI)
    os.chmod(smi, 0o755)
    state = os.path.join(directory, "smi-state")
    os.makedirs(state, exist_ok=True)
    return smi, state


def processes_mentioning(text):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


class NvmlStubTest(NvmlStubLibrary, AgentTestCase):
    def setUp(self):
        super().setUp()
        self.stub_state = os.path.join(self.tmp, "nvml-limits")
        self.env.update({"WATTBENCH_NVML_LIB": self.lib, "NVML_STUB_STATE": self.stub_state})

    def stub_limits(self):
        with open(self.stub_state) as f:
            return [int(line) for line in f.read().split()]

    def test_probe_lists_gpus(self):
        for source in ("nvml", "auto"):
            out = self.run_tool("probe", "--source", source)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            hello = json.loads(out.stdout)
            self.assertEqual(hello["type"], "hello")
            self.assertEqual(hello["telemetry"]["source"], "nvml")
            self.assertEqual(hello["driver"], "550.54.stub")
            self.assertFalse(hello["simulated"])
            gpus = hello["gpus"]
            self.assertEqual([g["name"] for g in gpus], ["NVIDIA Stub GPU 0", "NVIDIA Stub GPU 1"])
            self.assertEqual([g["energy_counter"] for g in gpus], [True, False])
            self.assertEqual(gpus[0]["memory_mb"], 81920)
            self.assertEqual((gpus[0]["power_limit_w"], gpus[0]["default_limit_w"], gpus[0]["min_limit_w"],
                              gpus[0]["max_limit_w"]), (300.0, 300.0, 100.0, 350.0))

    def test_run_samples_and_caps_through_nvml(self):
        job = self.make_job([http_point("capped", power_cap_w=150, num_prompts=8, concurrency=2)],
                            telemetry={"source": "nvml", "interval_s": 0.05, "idle_baseline_s": 0.3})
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        self.assertEqual(events[0]["telemetry"], {"source": "nvml", "interval_s": 0.05, "power_reading": "instant"})
        self.assertTrue(events[0]["simulated"])  # the server was simulated, even if the telemetry was not

        cap_set, cap_restore = self.of_type(events, "cap")
        self.assertEqual(cap_set["gpus"], [{"i": 0, "from_w": 300.0, "to_w": 150.0},
                                           {"i": 1, "from_w": 300.0, "to_w": 150.0}])
        self.assertEqual([g["to_w"] for g in cap_restore["gpus"]], [300.0, 300.0])
        self.assertEqual(self.stub_limits(), [300000, 300000])
        self.assertFalse(os.path.exists(self.caps_file()))

        samples = self.of_type(events, "sample")
        self.assertGreater(len(samples), 5)
        gpu0, gpu1 = samples[-1]["gpus"]
        self.assertEqual((gpu0["p_w"], gpu1["p_w"]), (100.0, 110.0))
        self.assertIn("e_j", gpu0)
        self.assertNotIn("e_j", gpu1)  # NOT_SUPPORTED: no counter, no field
        self.assertEqual((gpu0["util"], gpu0["mem_util"], gpu0["sm_mhz"], gpu0["temp_c"]), (42, 17, 1410, 45))
        measure_from = self.of_type(events, "phase", phase="measure")[0]["t"]
        measure_to = self.of_type(events, "phase", phase="cooldown")[0]["t"]
        measured = [s for s in samples if measure_from <= s["t"] <= measure_to]
        self.assertTrue(measured and all(s["gpus"][0]["limit_w"] == 150.0 for s in measured))
        # the energy counter advances at the reported power (100 W), to the counter's mJ resolution
        first, last = samples[0], samples[-1]
        watts = (last["gpus"][0]["e_j"] - first["gpus"][0]["e_j"]) / (last["t"] - first["t"])
        self.assertAlmostEqual(watts, 100.0, delta=2.0)


class NvidiaSmiTest(AgentTestCase):
    def setUp(self):
        super().setUp()
        self.smi, self.smi_state = write_fake_nvidia_smi(self.tmp)
        self.env.update({"WATTBENCH_NVIDIA_SMI": self.smi, "FAKE_SMI_STATE": self.smi_state,
                         "WATTBENCH_NVML_LIB": os.path.join(self.tmp, "no-such-libnvidia-ml.so.1")})

    def test_probe(self):
        out = self.run_tool("probe", "--source", "auto")  # NVML is missing: auto falls back to nvidia-smi
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        hello = json.loads(out.stdout)
        self.assertEqual((hello["telemetry"]["source"], hello["driver"]), ("nvidia-smi", "550.90.07"))
        self.assertEqual([(g["index"], g["name"], g["power_limit_w"], g["max_limit_w"], g["energy_counter"])
                          for g in hello["gpus"]],
                         [(0, "NVIDIA Fake A100", 250.0, 300.0, False), (1, "NVIDIA Fake A100", 250.0, 300.0, False)])

    def test_run_samples_and_caps_through_nvidia_smi(self):
        job = self.make_job([command_point("sleep", "sleep 0.8", power_cap_w=200)], server=None, sim=None,
                            telemetry={"source": "nvidia-smi", "interval_s": 0.1, "idle_baseline_s": 0.2})
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        self.assertFalse(events[0]["simulated"])
        cap_set, cap_restore = self.of_type(events, "cap")
        self.assertEqual(cap_set["gpus"], [{"i": 0, "from_w": 250.0, "to_w": 200.0},
                                           {"i": 1, "from_w": 250.0, "to_w": 200.0}])
        self.assertEqual([g["to_w"] for g in cap_restore["gpus"]], [250.0, 250.0])
        for index in (0, 1):
            with open(os.path.join(self.smi_state, "limit%d" % index)) as f:
                self.assertEqual(float(f.read()), 250.0)
        samples = self.of_type(events, "sample")
        self.assertGreater(len(samples), 5)
        self.assertEqual([g["p_w"] for g in samples[-1]["gpus"]], [80.5, 90.5])
        self.assertTrue(all("e_j" not in g for s in samples for g in s["gpus"]))
        during = [s for s in samples if s.get("point") == "sleep"]
        self.assertTrue(any(s["gpus"][0]["limit_w"] == 200.0 for s in during))
        # samples came from one streaming `nvidia-smi -lms 100`, not a process per sample
        with open(os.path.join(self.smi_state, "calls")) as f:
            calls = f.read().splitlines()
        samplings = [c for c in calls if "power.draw" in c]
        self.assertEqual(len([c for c in samplings if "-lms 100" in c]), 1)
        self.assertLessEqual(len(samplings), 3, calls)  # start-up, the stream, perhaps a first one-shot
        # the streaming nvidia-smi was stopped with the run
        self.assertEqual(processes_mentioning(self.smi), [])


class NoTelemetryTest(AgentTestCase):
    def test_auto_with_nothing_is_a_clear_fatal_error(self):
        env = dict(self.env)
        env.update({"WATTBENCH_NVML_LIB": "libnvidia-ml.so.1-not-here", "PATH": "/usr/bin:/bin"})
        env.pop("WATTBENCH_NVIDIA_SMI", None)
        if shutil.which("nvidia-smi", path=env["PATH"]):
            self.skipTest("this machine has nvidia-smi on /usr/bin:/bin")
        job = self.make_job([http_point("p")], telemetry={"source": "auto", "idle_baseline_s": 0})
        result = self.run_agent(job, env=env)
        self.assertEqual(result.returncode, 1)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        error = self.of_type(events, "error")[0]
        self.assertEqual((error["where"], error["fatal"]), ("telemetry", True))
        self.assertTrue(error["message"].startswith("no GPU telemetry found: libnvidia-ml.so.1 not loadable ("),
                        error["message"])
        self.assertTrue(error["message"].endswith(
            "), nvidia-smi not on PATH; set telemetry.source: sim to simulate"), error["message"])
        self.assertEqual(self.done(events)["status"], "error")
        # the same answer from probe
        out = self.run_tool("probe", env=env)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(json.loads(out.stdout)["message"], error["message"])
