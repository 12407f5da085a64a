"""Shared set-up for the agent's tests: a private WATTBENCH_HOME and sim dir per test, job builders,
runners, and checks of the event stream against docs/protocol.md.

The agent runs as it ships: every subprocess runs a wattbench_agent.pyz built here, once per test process,
from agent/wattbench_agent/ by scripts/build_agent.py (dist/'s copy may be older than the sources). Unit-level
tests import the package's modules from agent/ (put on sys.path below)."""

import atexit
import copy
import json
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT_DIR = os.path.join(REPO, "agent")  # holds the package; on sys.path for the tests' imports
PACKAGE_DIR = os.path.join(AGENT_DIR, "wattbench_agent")
BUILDER = os.path.join(REPO, "scripts", "build_agent.py")
SIM_PROFILE_PATH = os.path.join(REPO, "test", "fixtures", "sim-profile.json")

if AGENT_DIR not in sys.path:
    sys.path.insert(0, AGENT_DIR)

from wattbench_agent.util import free_loopback_port, group_alive  # noqa: E402  (needs AGENT_DIR on the path)

with open(SIM_PROFILE_PATH) as _f:
    SIM_PROFILE = json.load(_f)


def build_archive(out: str) -> str:
    """Builds wattbench_agent.pyz at `out` with scripts/build_agent.py, as `npm run build` does."""
    subprocess.run([sys.executable, BUILDER, out], check=True, stdout=subprocess.DEVNULL)
    return out


_BUILD_DIR = tempfile.mkdtemp(prefix="wattbench-agent-pyz-")
atexit.register(shutil.rmtree, _BUILD_DIR, True)
AGENT = build_archive(os.path.join(_BUILD_DIR, "wattbench_agent.pyz"))  # what `python3 AGENT COMMAND` runs

# Required fields per event type (docs/protocol.md, "Events").
REQUIRED_FIELDS = {
    "hello": ("run_id", "host", "agent_version", "python", "pid", "pgid", "driver", "telemetry", "simulated",
              "capabilities", "gpus"),
    "phase": ("phase",),
    "sample": ("gpus", "dt_s"),
    "request": ("point", "i", "ok", "warmup", "t_start", "t_end", "prompt_tokens", "output_tokens", "ttft_s",
                "latency_s", "itl_s"),
    "point": ("point", "state"),
    "cap": ("action", "gpus"),
    "log": ("level", "msg", "source"),
    "error": ("where", "message", "fatal"),
    "done": ("status", "caps_restored"),
    "engine": ("values",),
}
PHASES = {"baseline", "server_start", "server_ready", "cap", "warmup", "measure", "cooldown", "restore",
          "server_stop"}
GPU_FIELDS = ("index", "name", "uuid", "memory_mb", "power_limit_w", "default_limit_w", "min_limit_w",
              "max_limit_w", "energy_counter")


def http_point(point_id: str, **workload: Any) -> Dict[str, Any]:
    """A short http point: tiny prompts and outputs so a point lasts about a second with the test profile."""
    power_cap_w = workload.pop("power_cap_w", None)
    spec = {
        "kind": "http",
        "dataset": {"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 8},
                    "output_tokens": {"dist": "fixed", "mean": 20}},
        "num_prompts": 8, "max_tokens": 20, "concurrency": 4, "request_rate": None, "warmup_requests": 0,
        "temperature": 0.0, "ignore_eos": True, "time_limit_s": 30, "seed": 1, "command": None,
    }
    spec.update(workload)
    return {"id": point_id, "label": point_id, "power_cap_w": power_cap_w, "repeats": 1, "workload": spec}


def command_point(point_id: str, command: str, **extra: Any) -> Dict[str, Any]:
    workload = {"kind": "command", "command": command}
    workload.update(extra.pop("workload", {}))
    point = {"id": point_id, "label": point_id, "power_cap_w": None, "repeats": 1, "workload": workload}
    point.update(extra)
    return point


def find_free_port() -> int:
    return free_loopback_port()


class AgentTestCase(unittest.TestCase):
    """Each test gets its own temp dir holding WATTBENCH_HOME, the sim dir, jobs and run dirs; process
    groups the agent left behind (e.g. after kill -9) are stopped in tearDown."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="wattbench-agent-test-")
        self.home = os.path.join(self.tmp, "home")
        self.sim_dir = os.path.join(self.tmp, "sim")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WATTBENCH_")}
        self.env.update({"WATTBENCH_HOME": self.home, "WATTBENCH_SIM_DIR": self.sim_dir,
                         "PYTHONDONTWRITEBYTECODE": "1"})
        self._run_dirs = []  # type: List[str]
        self._procs = []  # type: List[subprocess.Popen]
        self._job_count = 0

    def tearDown(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for run_dir in self._run_dirs:
            state = self.state(run_dir)
            for key in ("server_pgid", "pgid"):
                pgid = state.get(key)
                if pgid and pgid != os.getpgid(0) and group_alive(pgid):
                    try:
                        os.killpg(pgid, signal.SIGKILL)
                    except OSError:
                        pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- jobs and runs ---

    def make_job(self, points: List[Dict[str, Any]], **overrides: Any) -> Dict[str, Any]:
        job = {
            "v": 1,
            "run_id": "test-run",
            "telemetry": {"source": "sim", "interval_s": 0.1, "idle_baseline_s": 0.2},
            "gpus": {"indices": None, "count": 2},
            "server": {"sim": True, "command": None, "base_url": None, "api": "completions", "model": "sim-model",
                       "ready_timeout_s": 20, "env": {}},
            "sim": copy.deepcopy(SIM_PROFILE),
            "points": points,
        }
        job.update(overrides)
        return job

    def write_job(self, job: Any, raw: Optional[str] = None) -> str:
        self._job_count += 1
        path = os.path.join(self.tmp, "job-%d.json" % self._job_count)
        with open(path, "w") as f:
            f.write(raw if raw is not None else json.dumps(job))
        return path

    def new_run_dir(self) -> str:
        run_dir = os.path.join(self.tmp, "runs", "run-%d" % (len(self._run_dirs) + 1))
        self._run_dirs.append(run_dir)
        return run_dir

    def agent_command(self, *args: str) -> List[str]:
        return [sys.executable, AGENT] + list(args)

    def run_agent(self, job: Any, raw: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                  timeout: float = 60) -> "RunResult":
        job_path = self.write_job(job, raw)
        run_dir = self.new_run_dir()
        done = subprocess.run(self.agent_command("run", "--job", job_path, "--run-dir", run_dir),
                              env=env or self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout)
        return RunResult(done.returncode, run_dir, done.stdout, done.stderr)

    def start_agent(self, job: Any, detach: bool = False) -> "StartedRun":
        """Start `run` in the background (its own process group); returns at once."""
        job_path = self.write_job(job)
        run_dir = self.new_run_dir()
        args = self.agent_command("run", "--job", job_path, "--run-dir", run_dir)
        if detach:
            out = subprocess.run(args + ["--detach"], env=self.env, stdout=subprocess.PIPE, check=True,
                                 universal_newlines=True, timeout=20).stdout
            return StartedRun(json.loads(out)["pid"], run_dir, None)
        with open(os.path.join(self.tmp, "agent-stderr-%d.txt" % len(self._run_dirs)), "w") as stderr:
            proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr,
                                    start_new_session=True)
        self._procs.append(proc)
        return StartedRun(proc.pid, run_dir, proc)

    def run_tool(self, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.agent_command(*args), env=env or self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=30)

    # --- reading results ---

    @staticmethod
    def events(run_dir: str) -> List[Dict[str, Any]]:
        path = os.path.join(run_dir, "events.ndjson")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    @staticmethod
    def state(run_dir: str) -> Dict[str, Any]:
        try:
            with open(os.path.join(run_dir, "state.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def sim_limits(self) -> Dict[str, float]:
        path = os.path.join(self.sim_dir, "limits.json")
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            return json.load(f)

    def caps_file(self) -> str:
        """Where this host's saved limits live: the agent's own rule, under this test's home."""
        from unittest import mock
        from wattbench_agent.caps import caps_file_path
        with mock.patch.dict(os.environ, {"WATTBENCH_HOME": self.home}):
            return caps_file_path()

    def sim_truth(self, t_from: float, t_to: float) -> Dict[str, Any]:
        out = self.run_tool("sim-truth", "--sim-dir", self.sim_dir, "--from", repr(t_from), "--to", repr(t_to))
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        self.fail("timed out after %g s waiting for %s" % (timeout, what))

    def wait_for_event(self, run_dir: str, predicate: Callable[[Dict[str, Any]], bool], timeout: float = 20,
                       what: str = "event") -> Dict[str, Any]:
        return self.wait_for(lambda: next((e for e in self.events(run_dir) if predicate(e)), None), timeout, what)

    # --- checks ---

    def assert_well_formed(self, events: List[Dict[str, Any]]) -> None:
        """Every event has v, seq (0, 1, 2, ... without gaps), t and a known type with its fields."""
        self.assertTrue(events, "no events written")
        for number, event in enumerate(events):
            self.assertEqual(event.get("v"), 1, event)
            self.assertEqual(event.get("seq"), number, "seq gap or repeat at line %d" % number)
            self.assertIsInstance(event.get("t"), float, event)
            self.assertIn(event.get("type"), REQUIRED_FIELDS, event)
            for name in REQUIRED_FIELDS[event["type"]]:
                self.assertIn(name, event, "%s event without %s: %s" % (event["type"], name, event))
            if event["type"] == "phase":
                self.assertIn(event["phase"], PHASES)
            if event["type"] == "hello":
                for gpu in event["gpus"]:
                    for name in GPU_FIELDS:
                        self.assertIn(name, gpu)
            if event["type"] == "sample":
                for gpu in event["gpus"]:
                    self.assertIn("i", gpu)
                    self.assertIn("p_w", gpu)
            if event["type"] == "point" and event["state"] == "end":
                self.assertIn(event["status"], ("ok", "error", "cancelled", "timeout"))
                self.assertIn("requests", event)
                self.assertIn("errors", event)
            if event["type"] == "done":
                self.assertIn(event["status"], ("ok", "error", "cancelled"))
        self.assertEqual(events[-1]["type"], "done", "the last event is not done")

    @staticmethod
    def of_type(events: List[Dict[str, Any]], event_type: str, **match: Any) -> List[Dict[str, Any]]:
        return [e for e in events if e["type"] == event_type and all(e.get(k) == v for k, v in match.items())]

    def done(self, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        done = self.of_type(events, "done")
        self.assertEqual(len(done), 1, "expected exactly one done event")
        return done[0]


class RunResult:
    def __init__(self, returncode: int, run_dir: str, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.run_dir = run_dir
        self.stdout = stdout
        self.stderr = stderr


class StartedRun:
    def __init__(self, pid: int, run_dir: str, proc: Optional[subprocess.Popen]) -> None:
        self.pid = pid
        self.run_dir = run_dir
        self.proc = proc


def max_overlap(requests: List[Dict[str, Any]]) -> int:
    """Most requests in flight at once."""
    edges = sorted([(r["t_start"], 1) for r in requests] + [(r["t_end"], -1) for r in requests])
    in_flight = peak = 0
    for _, step in edges:
        in_flight += step
        peak = max(peak, in_flight)
    return peak


def serve_on_loopback(handle: Callable[[socketserver.StreamRequestHandler], None]) -> Tuple[socketserver.ThreadingTCPServer, int]:
    """A threaded TCP server on 127.0.0.1 (an ephemeral port) calling `handle` for each connection, served from a
    daemon thread; (server, port). Stop it with server.shutdown() and server.server_close()."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            handle(self)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, server.server_address[1]
