"""Wattbench agent: measures what LLM inference costs on the GPUs of this host.

Python 3.8+ standard library only. The extension uploads it to the GPU host as one archive,
wattbench_agent.pyz (this package, built by scripts/build_agent.py), and starts it detached. It samples GPU
power and energy, optionally launches the inference server, generates load against it, sets power caps per
sweep point (and always restores them), and writes every event as one JSON line to DIR/events.ndjson and
stdout. The contract is docs/protocol.md of the Wattbench repository.

Subcommands:
  run          run a job file (--job JOB.json --run-dir DIR [--detach])
  restore-caps restore power limits left changed by an agent that died hard (on this host)
  stop-server  stop the inference server a dead agent left running (--run-dir DIR), once it is sure it is that
  probe        print one `hello` event describing the GPUs found, then exit
  sim-server   a simulated OpenAI-compatible LLM server driving simulated GPUs (for demos and tests)
  sim-truth    ground-truth energy of the simulated GPUs over a time window (for tests)
  list-runs    one JSON line per run directory under --root
  hf-configs   the models in this host's Hugging Face cache, with their config.json, as one JSON line
"""

import argparse
import json
import os
import platform
import signal
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

if __name__ == "__main__" and not __package__:
    # `python3 agent/wattbench_agent ...` (how the sources start their sim server): the package's directory
    # run as a script. Run it as `python3 -m wattbench_agent` would, from the directory above, so that its
    # modules are the package's.
    import runpy

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path = [os.path.dirname(_here)] + [p for p in sys.path if os.path.abspath(p) != _here]
    runpy.run_module("wattbench_agent", run_name="__main__", alter_sys=True)
    sys.exit(0)  # not reached: the package's __main__ exits

from .caps import restore_leftover_caps
from .events import EventWriter
from .hfcache import cmd_hf_configs, write_run_hf_configs
from .job import TELEMETRY_SOURCES, JobError, load_job, parse_sim_profile
from .processes import stop_leftover_server
from .run import AgentRun, hello_fields
from .sampler import Sampler
from .simserver import cmd_sim_server, cmd_sim_truth
from .telemetry.base import TelemetryUnavailable
from .telemetry.open import open_telemetry
from .util import DiagLog, default_sim_dir, pid_alive, read_json_file
from .version import AGENT_VERSION, PROTOCOL_VERSION


def prepare_run_dir(run_dir: str) -> None:
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "events.ndjson"), "ab"):
        pass


def write_pid_file(path: str, pid: int) -> None:
    """Atomically: a detached start writes the file twice (the forking parent and the agent itself), and a
    reader must never see it truncated."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % pid)
    os.replace(tmp, path)


def run_agent(job_path: str, run_dir: str, sim_dir: Optional[str], mirror_stdout: bool,
              signals: Tuple[int, ...]) -> int:
    diag = DiagLog(os.path.join(run_dir, "agent.log"))
    diag.write("agent %s (python %s) starting" % (AGENT_VERSION, platform.python_version()))
    events = EventWriter(os.path.join(run_dir, "events.ndjson"), mirror_stdout)
    try:
        write_pid_file(os.path.join(run_dir, "agent.pid"), os.getpid())
        agent = AgentRun(job_path, run_dir, sim_dir, events, diag)
        agent.install_signal_handlers(signals)
        return agent.execute()
    finally:
        events.close()


def detach_and_run(job_path: str, run_dir: str, sim_dir: Optional[str]) -> int:
    """Double fork into a new session so the agent outlives the SSH connection; the parent returns once
    DIR/agent.pid names the agent."""
    pid_path = os.path.join(run_dir, "agent.pid")
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child > 0:
        os.waitpid(child, 0)
        with open(pid_path) as f:
            pid = int(f.read().strip())
        print(json.dumps({"pid": pid, "run_dir": run_dir}))
        return 0
    os.setsid()
    grandchild = os.fork()
    if grandchild > 0:
        write_pid_file(pid_path, grandchild)
        os._exit(0)
    os.setpgid(0, 0)  # lead a process group of its own, so `kill -TERM -PGID` reaches exactly the agent
    # The agent itself: no terminal, stdout to nowhere (events.ndjson has everything), stderr to agent.log.
    devnull = os.open(os.devnull, os.O_RDWR)
    log_fd = os.open(os.path.join(run_dir, "agent.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(log_fd, 2)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = 1
    try:
        code = run_agent(job_path, run_dir, sim_dir, mirror_stdout=False, signals=(signal.SIGTERM, signal.SIGINT))
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def cmd_run(args: argparse.Namespace) -> int:
    run_dir = os.path.abspath(args.run_dir)
    job_path = os.path.abspath(args.job)
    try:
        prepare_run_dir(run_dir)
    except OSError as e:
        message = "cannot write the run directory %s: %s" % (run_dir, e.strerror or e)
        print("wattbench agent: %s" % message, file=sys.stderr)
        print(json.dumps({"v": PROTOCOL_VERSION, "seq": 0, "t": time.time(), "type": "error", "where": "run_dir",
                          "message": message, "fatal": True}))
        return 2
    write_run_hf_configs(run_dir)
    if args.detach:
        return detach_and_run(job_path, run_dir, args.sim_dir)
    # Attached to a terminal or an SSH channel: a hang-up cancels like SIGTERM, so limits are restored.
    return run_agent(job_path, run_dir, args.sim_dir, mirror_stdout=True,
                     signals=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP))


def cmd_sample(args: argparse.Namespace) -> int:
    """Samples this node's GPUs for a run whose benchmark runs elsewhere (the other nodes of a Slurm
    allocation): `hello`, `sample` events, and `done` once the run in --until-done has ended (or on
    SIGTERM/SIGINT). The same job file as the run, so the same telemetry settings."""
    run_dir = os.path.abspath(args.run_dir)
    prepare_run_dir(run_dir)
    stop = threading.Event()
    write_errors = []  # type: List[OSError]

    def events_failed(error: OSError) -> None:  # nothing sampled from now on would be kept: stop
        write_errors.append(error)
        stop.set()

    events = EventWriter(os.path.join(run_dir, "events.ndjson"), mirror_stdout=False, on_error=events_failed)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    status = "ok"
    telemetry = None
    sampler = None
    try:
        job = load_job(os.path.abspath(args.job))
        telemetry = open_telemetry(job.telemetry.source, job.sim, os.path.abspath(args.sim_dir or default_sim_dir()))
        available = sorted(g["index"] for g in telemetry.gpus())
        indices = list(job.gpu_indices) if job.gpu_indices is not None else available[:job.gpu_count or len(available)]
        info = {g["index"]: g for g in telemetry.gpus()}
        simulated = telemetry.simulated or bool(job.server and job.server.sim)
        events.emit("hello", **hello_fields(telemetry, job.run_id, [info[i] for i in indices if i in info],
                                            job.telemetry.interval_s, simulated))
        sampler = Sampler(telemetry, indices, job.telemetry.interval_s, events, lambda: None)
        telemetry.start(job.telemetry.interval_s)
        sampler.start()
        state_path = os.path.join(os.path.abspath(args.until_done), "state.json") if args.until_done else None
        # The batch script writes `exited` beside a run whose agent has ended however it ended: an agent
        # killed with -9 leaves state.json "running", and this node must not sample forever.
        exited_path = os.path.join(os.path.abspath(args.until_done), "exited") if args.until_done else None
        while not stop.wait(0.5):
            if exited_path and os.path.exists(exited_path):
                break
            if state_path:
                try:
                    if read_json_file(state_path).get("status") not in (None, "running"):
                        break
                except (OSError, ValueError):
                    pass
        if write_errors:
            status = "error"
        elif stop.is_set():
            status = "cancelled"
    except (JobError, TelemetryUnavailable, OSError, ValueError) as e:
        events.emit("error", where="sample", message=str(e), fatal=True)
        status = "error"
    finally:
        if sampler is not None:
            sampler.stop()
        if telemetry is not None:
            telemetry.close()
        events.emit("done", status=status, caps_restored=True)
        events.close()
    return 0 if status != "error" else 1


def cmd_restore_caps(args: argparse.Namespace) -> int:
    result = restore_leftover_caps()
    print(json.dumps(result))
    return 1 if result["status"] == "failed" else 0


def cmd_stop_server(args: argparse.Namespace) -> int:
    result = stop_leftover_server(os.path.abspath(args.run_dir), args.grace)
    print(json.dumps(result))
    return 1 if result["status"] == "failed" else 0


def cmd_probe(args: argparse.Namespace) -> int:
    events = EventWriter(None, mirror_stdout=True)
    profile = None
    if args.profile:
        try:
            profile = parse_sim_profile(read_json_file(args.profile), "profile")
        except (OSError, ValueError, JobError) as e:
            events.emit("error", where="probe", message="bad sim profile %s: %s" % (args.profile, e), fatal=True)
            return 1
    try:
        telemetry = open_telemetry(args.source, profile, args.sim_dir)
    except TelemetryUnavailable as e:
        fields = {"where": "telemetry", "message": str(e), "fatal": True}  # type: Dict[str, Any]
        if getattr(e, "detail", None):
            fields["detail"] = e.detail  # type: ignore[attr-defined]
        events.emit("error", **fields)
        return 1
    try:
        events.emit("hello", **hello_fields(telemetry, None, telemetry.gpus(), 0.1, telemetry.simulated))
    finally:
        telemetry.close()
    return 0


def cmd_list_runs(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root)
    try:
        names = sorted(os.listdir(root))
    except OSError as e:
        print("list-runs: cannot read %s: %s" % (root, e.strerror or e), file=sys.stderr)
        return 2
    for name in names:
        run_dir = os.path.join(root, name)
        state_path = os.path.join(run_dir, "state.json")
        pid_path = os.path.join(run_dir, "agent.pid")
        if not os.path.isdir(run_dir) or not (os.path.exists(state_path) or os.path.exists(pid_path)):
            continue
        state = {}  # type: Dict[str, Any]
        try:
            state = read_json_file(state_path)
        except (OSError, ValueError):
            pass
        pid = state.get("pid")
        if pid is None:
            try:
                with open(pid_path) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                pid = None
        alive = pid_alive(pid) and "wattbench" in _cmdline(pid)
        print(json.dumps({"run_id": state.get("run_id") or name, "run_dir": run_dir, "pid": pid, "alive": alive,
                          "status": state.get("status", "running" if alive else "unknown")}))
    return 0


def _cmdline(pid: Optional[int]) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except (OSError, TypeError):
        return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wattbench_agent.pyz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=AGENT_VERSION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run a job file")
    run.add_argument("--job", required=True, help="the job file (JSON)")
    run.add_argument("--run-dir", required=True, help="where events.ndjson, state.json and logs go")
    run.add_argument("--detach", action="store_true", help="double-fork into a new session and return at once")
    run.add_argument("--sim-dir", help="simulated GPUs' state (default $WATTBENCH_SIM_DIR or $WATTBENCH_HOME/sim)")
    run.set_defaults(handler=cmd_run)

    sample = sub.add_parser("sample", help="only sample this node's GPUs (other nodes of a Slurm job)")
    sample.add_argument("--job", required=True, help="the run's job file (for the telemetry settings)")
    sample.add_argument("--run-dir", required=True, help="where this node's events.ndjson goes")
    sample.add_argument("--until-done", help="stop once the run in this directory has ended (its state.json, or an "
                        "`exited` file beside it)")
    sample.add_argument("--sim-dir")
    sample.set_defaults(handler=cmd_sample)

    restore = sub.add_parser("restore-caps", help="restore power limits left by an agent that died hard")
    restore.set_defaults(handler=cmd_restore_caps)

    stop_server = sub.add_parser("stop-server", help="stop the server a dead agent left running, if it is that")
    stop_server.add_argument("--run-dir", required=True, help="the run's directory (its state.json)")
    stop_server.add_argument("--grace", type=float, default=None,
                             help="seconds between TERM and KILL (default 10, as the agent)")
    stop_server.set_defaults(handler=cmd_stop_server)

    probe = sub.add_parser("probe", help="print one hello event describing the GPUs and exit")
    probe.add_argument("--source", default="auto", choices=TELEMETRY_SOURCES)
    probe.add_argument("--profile", help="SimProfile JSON for --source sim")
    probe.add_argument("--sim-dir")
    probe.set_defaults(handler=cmd_probe)

    sim = sub.add_parser("sim-server", help="run the simulated OpenAI-compatible LLM server")
    sim.add_argument("--port", type=int, required=True)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--profile", required=True, help="SimProfile JSON")
    sim.add_argument("--sim-dir")
    sim.add_argument("--model", default="sim-model", help="the model name it answers to")
    sim.add_argument("--seed", type=int, default=1, help="seed of the output lengths when ignore_eos is off")
    sim.set_defaults(handler=cmd_sim_server)

    truth = sub.add_parser("sim-truth", help="ground-truth energy of the simulated GPUs over a time window")
    truth.add_argument("--sim-dir")
    truth.add_argument("--from", dest="t_from", type=float, required=True, help="epoch seconds")
    truth.add_argument("--to", dest="t_to", type=float, required=True, help="epoch seconds")
    truth.set_defaults(handler=cmd_sim_truth)

    runs = sub.add_parser("list-runs", help="one JSON line per run directory under --root")
    runs.add_argument("--root", required=True)
    runs.set_defaults(handler=cmd_list_runs)

    hf = sub.add_parser("hf-configs", help="the models in this host's Hugging Face cache, with their config.json")
    hf.add_argument("--cache-dir", help="the hub cache (default $HF_HUB_CACHE, else $HF_HOME/hub, "
                    "else ~/.cache/huggingface/hub)")
    hf.set_defaults(handler=cmd_hf_configs)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
