"""One `run`: hello, idle baseline, server, points (cap, warm-up, measure, cool-down), restore, done."""

import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

from .caps import CapKeeper, CapRestoreError, restore_leftover_caps
from .events import EventWriter
from .job import Job, JobError, PointConfig, load_job
from .client import Endpoint
from .load import LoadRunner, PointCounts
from .metrics import Scraper
from .processes import SERVER_LOG_TAIL_LINES, SERVER_TOKEN_ENV, LogTail, ManagedProcess
from .prompts import build_request_specs
from .readiness import probe_paths
from .sampler import Sampler
from .telemetry.base import Telemetry, TelemetryError, TelemetryUnavailable
from .telemetry.open import open_telemetry
from .tools import run_tool_point
from .util import (DiagLog, boot_id, now, default_sim_dir, describe_exit, free_loopback_port, process_start_ticks,
                   tail_lines, write_json_atomic, write_json_in_place)
from .version import AGENT_FILE, AGENT_VERSION


class Cancelled(Exception):
    """SIGTERM/SIGINT arrived (or the run must stop: AgentRun.abort_reason says why): unwind, restore,
    report."""


class FatalError(Exception):
    def __init__(self, where: str, message: str, detail: Optional[str] = None, point: Optional[str] = None) -> None:
        super().__init__(message)
        self.where = where
        self.message = message
        self.detail = detail
        self.point = point


class RunState:
    """DIR/state.json: {pid, pid_start, pgid, boot_id, status, started, ended, run_id, server_pgid, server_pid,
    server_start, server_token}, replaced atomically; on a full disk overwritten in place, so that a run
    that ends there does not stay `running`. `pid_start`/`server_start` are the processes' start times
    (/proc/PID/stat, clock ticks since boot `boot_id`), which tell them apart from later ones reusing a pid."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = {"pid": os.getpid(), "pid_start": process_start_ticks(os.getpid()), "pgid": os.getpgid(0),
                     "boot_id": boot_id(), "status": "running", "started": time.time(), "ended": None,
                     "run_id": None, "server_pgid": None, "server_pid": None, "server_start": None,
                     "server_token": None}  # type: Dict[str, Any]
        self.error = None  # type: Optional[OSError]

    def update(self, **changes: Any) -> None:
        self.data.update(changes)
        try:
            write_json_atomic(self.path, self.data)
            self.error = None
        except OSError as e:
            try:
                write_json_in_place(self.path, self.data)  # no room for a new file: reuse the old one's
                self.error = None
            except OSError:
                self.error = e


class AgentRun:
    """One `run`: hello, baseline, server, points (cap, warm-up, measure, cool-down), restore, done."""

    def __init__(self, job_path: str, run_dir: str, sim_dir: Optional[str], events: EventWriter,
                 diag: DiagLog) -> None:
        self.job_path = job_path
        self.run_dir = run_dir
        self.sim_dir_arg = sim_dir
        self.events = events
        self.diag = diag
        self.state = RunState(os.path.join(run_dir, "state.json"))
        self.cancel = threading.Event()
        self.cancel_signal = None  # type: Optional[int]
        self.job = None  # type: Optional[Job]
        self.telemetry = None  # type: Optional[Telemetry]
        self.gpu_indices = []  # type: List[int]
        self.load_runner = None  # type: Optional[LoadRunner]
        self.gpu_info = {}  # type: Dict[int, Dict[str, Any]]
        self.sampler = None  # type: Optional[Sampler]
        self.caps = CapKeeper()
        self.server = None  # type: Optional[ManagedProcess]
        self.server_log = os.path.join(run_dir, "server.log")
        self.log_tail = None  # type: Optional[LogTail]
        self.endpoint = None  # type: Optional[Endpoint]
        self.engine_scraper = None  # type: Optional[Scraper]
        self.current_point = None  # type: Optional[str]
        self.workload_process = None  # type: Optional[ManagedProcess]
        self.hurry = threading.Event()  # told to stop twice: KILL the server and workload without a grace
        self.abort_reason = None  # type: Optional[str]
        self._abort_where = "agent"
        self._abort_reported = False
        self._signals_received = 0
        self._finishing = threading.Event()
        self._server_failure = None  # type: Optional[str]
        self._server_failure_reported = False
        self._probe_lock = threading.Lock()
        self._last_probe = 0.0
        events.on_error = self._events_failed
        if events.write_error is not None:
            self._events_failed(events.write_error)

    # --- signals ---

    def install_signal_handlers(self, signals: Tuple[int, ...]) -> None:
        """Turn SIGTERM/SIGINT into `cancel`. The Python-level handler does nothing: the C handler writes
        the signal number to a pipe that a watcher thread reads, so no lock is ever taken inside a
        signal handler (which could deadlock against the interrupted main thread)."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, lambda signum, frame: None)

        def watch() -> None:
            while True:
                data = os.read(read_fd, 64)
                for signum in data:
                    if signum in signals:
                        self._signals_received += 1
                        if self._signals_received == 1:
                            self.cancel_signal = signum
                        else:
                            # Told again: no more grace for the server or a workload, KILL them now.
                            self.hurry.set()
                            self.diag.write("%s again: stopping without a grace period"
                                            % signal.Signals(signum).name)
                        self.cancel.set()

        threading.Thread(target=watch, name="signals", daemon=True).start()

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def abort(self, reason: str, where: str = "agent", reported: bool = False) -> None:
        """Stop the run as an error (from any thread): every wait wakes up as for a cancel. `reported`: an
        `error` event already said why."""
        if self.abort_reason is None:
            self.abort_reason, self._abort_where, self._abort_reported = reason, where, reported
            self.diag.write("aborting: %s" % reason)
        self.cancel.set()

    def _events_failed(self, error: OSError) -> None:
        """The event writer could not write a line (a full disk, a quota): what is measured from now on
        would be lost, so the run stops; limits and server are put back all the same."""
        self.abort("cannot write the event file %s: %s" % (self.events.path, error.strerror or error), "events")

    def _emit(self, event_type: str, **fields: Any) -> None:
        """emit() for the ways out: nothing that goes wrong writing an event may stop the clean-up."""
        try:
            self.events.emit(event_type, **fields)
        except Exception:
            self.diag.write(traceback.format_exc())

    def _watch_sampler(self) -> None:
        """The sampling thread must not end unnoticed: if it stops while the run goes on, the run stops."""
        while not self._finishing.wait(0.5):
            sampler = self.sampler
            if sampler is not None and not sampler.is_alive():
                why = getattr(sampler, "failure", None)  # set when the sampler said so itself
                self.abort("GPU sampling stopped%s" % (": %s" % why if why else " (the sampling thread ended)"),
                           "sampler", reported=bool(why))
                return

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()

    # --- the whole run ---

    def execute(self) -> int:
        """The run, then its clean-up, on every way out: the clean-up (limits back, server stopped) and the
        final state.json never depend on writing an event, nor on anything before them going right."""
        self.state.update()
        status, reason = "error", "internal error"  # type: Tuple[str, Optional[str]]
        previous_hook = threading.excepthook
        threading.excepthook = self._thread_died
        try:
            status, reason = self._execute()
        finally:
            try:
                self._finishing.set()
                caps_restored = self._cleanup()
                done = {"status": status, "caps_restored": caps_restored}  # type: Dict[str, Any]
                if reason:
                    done["reason"] = reason
                self._emit("done", **done)
            finally:
                # state.json says running|done|error|cancelled (docs/protocol.md); `done` is the event's `ok`
                self.state.update(status="done" if status == "ok" else status, ended=time.time())
                threading.excepthook = previous_hook
                lost = self.events.lost
                self.diag.write("done: %s%s%s" % (status, " (%s)" % reason if reason else "",
                                                  "; %d event(s) could not be written" % lost if lost else ""))
        return 0 if status in ("ok", "cancelled") else 1

    def _thread_died(self, args: Any) -> None:
        """threading.excepthook: a thread of the run ended with an exception; never silently."""
        name = args.thread.name if args.thread is not None else "?"
        self.diag.write("thread %s died: %s" % (name, "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))))
        if args.thread is not None and args.thread is self.sampler:
            self.abort("GPU sampling stopped: %s: %s" % (args.exc_type.__name__, args.exc_value), "sampler")

    def _execute(self) -> Tuple[str, Optional[str]]:
        status, reason = "ok", None  # type: Tuple[str, Optional[str]]
        try:
            self.job = load_job(self.job_path)
            self.state.update(run_id=self.job.run_id)
            self.diag.write("job %s, run %s" % (self.job_path, self.job.run_id))
            self._restore_leftover_caps()
            self._open_telemetry()
            self._emit_hello()
            self.sampler = Sampler(self.telemetry, self.gpu_indices, self.job.telemetry.interval_s, self.events,
                                   lambda: self.current_point,
                                   lambda: self.load_runner.inflight() if self.load_runner is not None else None)
            self.telemetry.start(self.job.telemetry.interval_s)
            self.sampler.start()
            threading.Thread(target=self._watch_sampler, name="sampler-watch", daemon=True).start()
            self._baseline()
            self._start_server()
            self._run_points()
            if self.abort_reason:
                raise Cancelled()
            if self._server_failure:
                status, reason = "error", self._server_failure
        except Cancelled:
            if self.abort_reason:
                status, reason = "error", self.abort_reason
                if not self._abort_reported:
                    self._emit("error", where=self._abort_where, message=reason, fatal=True)
            else:
                name = signal.Signals(self.cancel_signal).name if self.cancel_signal else "a signal"
                status, reason = "cancelled", "cancelled by %s" % name
                self._emit("log", level="info", msg="cancel requested (%s): stopping" % name, source="agent")
        except JobError as e:
            status, reason = "error", str(e)
            self._emit("error", where="job", message=str(e), fatal=True)
        except FatalError as e:
            status, reason = "error", e.message
            fields = {"where": e.where, "message": e.message, "fatal": True}  # type: Dict[str, Any]
            if e.point:
                fields["point"] = e.point
            if e.detail:
                fields["detail"] = e.detail
            self._emit("error", **fields)
        except Exception as e:
            self.diag.write(traceback.format_exc())
            status, reason = "error", "internal error: %s: %s" % (type(e).__name__, e)
            self._emit("error", where="agent", message=reason, fatal=True, detail=traceback.format_exc())
        return status, reason

    def _cleanup(self) -> bool:
        """Restore limits, stop the workload and the server, stop sampling. Runs on every exit path; never
        raises, and no step depends on another (nor on an event being written)."""
        self.current_point = None
        caps_restored = True
        if self.caps.originals is not None:
            try:
                caps_restored = self._restore_caps()
            except Exception:
                caps_restored = False
                self.diag.write(traceback.format_exc())
        if self.engine_scraper is not None:
            try:
                self.engine_scraper.stop()  # before the server goes: its last scrapes would only fail
            except Exception:
                self.diag.write(traceback.format_exc())
        for process, phase in ((self.workload_process, None), (self.server, "server_stop")):
            if process is None or (phase is None and process.exit_code() is not None):
                continue  # a workload that ended by itself was dealt with by its point
            if phase:
                self._phase_safe(phase)
            try:
                problem = process.stop(hurry=self.hurry)
                if problem:
                    self.diag.write("stopping pid %d's group: %s" % (process.pid, problem))
                    self._emit("error", where="server" if phase else "workload", fatal=False,
                               message="could not stop process group %d: %s" % (process.pgid, problem))
            except Exception:
                self.diag.write(traceback.format_exc())
        for step in (self.log_tail, self.sampler):
            if step is not None:
                try:
                    step.stop()
                except Exception:
                    self.diag.write(traceback.format_exc())
        if self.telemetry is not None:
            try:
                self.telemetry.close()
            except Exception:
                self.diag.write(traceback.format_exc())
        return caps_restored

    def _restore_caps(self) -> bool:
        """The originals back on every GPU (each one tried even when another fails), and what happened said."""
        self._phase_safe("restore")
        try:
            changes = self.caps.restore(self.telemetry)
        except CapRestoreError as e:
            self.diag.write("restoring power limits: %s" % e)
            if e.changes:
                self._emit("cap", action="restore", gpus=e.changes)
            self._emit("error", where="caps", fatal=False,
                       message="could not restore the power limits of %s; the originals stay in %s, run "
                               "`wattbench_agent.pyz restore-caps`" % (e, self.caps.path),
                       detail=json.dumps(e.failures))
            return False
        except Exception as e:
            self.diag.write(traceback.format_exc())
            self._emit("error", where="caps", fatal=False,
                       message="could not restore the power limits: %s; the originals stay in %s, "
                               "run `wattbench_agent.pyz restore-caps`" % (e, self.caps.path))
            return False
        self._emit("cap", action="restore", gpus=changes)
        return True

    def _phase_safe(self, phase: str) -> None:
        try:
            self._phase(phase)
        except Exception:
            self.diag.write(traceback.format_exc())

    def _phase(self, phase: str, point: Optional[PointConfig] = None, repeat: Optional[int] = None) -> None:
        fields = {"phase": phase}  # type: Dict[str, Any]
        if point is not None:
            fields["point"] = point.id
            fields["repeat"] = repeat
        if phase in ("measure", "cooldown") and self.sampler is not None:
            # The measure window's edges get a sample of their own, taken at the edge's time.
            try:
                fields["t"] = self.sampler.sample_now()
            except Exception as e:
                self.diag.write("edge sample failed: %s" % e)
        self.events.emit("phase", **fields)

    # --- start-up ---

    def _restore_leftover_caps(self) -> None:
        result = restore_leftover_caps()
        if result["status"] == "restored":
            self.events.emit("log", level="info", msg=result["message"], source="agent")
        elif result["status"] in ("busy", "failed"):
            self.events.emit("log", level="warn", msg=result["message"], source="agent")

    def _sim_dir(self) -> str:
        return os.path.abspath(self.sim_dir_arg or default_sim_dir())

    def _open_telemetry(self) -> None:
        job = self.job
        try:
            self.telemetry = open_telemetry(job.telemetry.source, job.sim, self._sim_dir())
        except TelemetryUnavailable as e:
            raise FatalError("telemetry", str(e), detail=getattr(e, "detail", None))
        available = {g["index"]: g for g in self.telemetry.gpus()}
        if job.gpu_indices is not None:
            missing = [i for i in job.gpu_indices if i not in available]
            if missing:
                raise FatalError("gpus", "GPU %s not found: this host has %d GPU(s) (%s)"
                                 % (", ".join(map(str, missing)), len(available),
                                    ", ".join(map(str, sorted(available)))))
            self.gpu_indices = list(job.gpu_indices)
        else:
            count = job.gpu_count or len(available)
            if count > len(available):
                raise FatalError("gpus", "the job asks for %d GPUs but this host has %d" % (count, len(available)))
            self.gpu_indices = sorted(available)[:count]
        self.gpu_info = {i: available[i] for i in self.gpu_indices}
        self.diag.write("telemetry %s (%s), GPUs %s" % (self.telemetry.source, self.telemetry.driver,
                                                         self.gpu_indices))

    def _emit_hello(self) -> None:
        job = self.job
        simulated = self.telemetry.simulated or bool(job.server and job.server.sim)
        self.events.emit("hello", **hello_fields(self.telemetry, job.run_id, [self.gpu_info[i] for i in self.gpu_indices],
                                                 job.telemetry.interval_s, simulated))

    def _baseline(self) -> None:
        seconds = self.job.telemetry.idle_baseline_s
        if seconds > 0:
            self._phase("baseline")
            self._sleep(seconds)

    # --- the inference server ---

    def _start_server(self) -> None:
        config = self.job.server
        if config is None:
            return
        env = dict(os.environ)
        env.update(config.env)
        token = "%d-%s" % (os.getpid(), os.urandom(8).hex())
        env[SERVER_TOKEN_ENV] = token  # inherited by every process of the server: stop-server recognises them
        if config.sim:
            port = free_loopback_port()
            profile_path = os.path.join(self.run_dir, "sim-profile.json")
            write_json_atomic(profile_path, self.job.sim)
            command = [sys.executable, AGENT_FILE, "sim-server", "--port", str(port), "--profile", profile_path,
                       "--sim-dir", self._sim_dir(), "--model", config.model,
                       "--seed", str(self.job.sim["noise"]["seed"])]
            self.endpoint = self._endpoint("http://127.0.0.1:%d/v1" % port)
            shell = False
            description = "simulated server (sim-server) on 127.0.0.1:%d" % port
        elif config.command:
            command = config.command
            self.endpoint = self._endpoint(config.base_url)
            shell = True
            description = config.command
        else:
            # A server that is already running: it must answer now.
            self.endpoint = self._endpoint(config.base_url)
            ready, error = self._probe()
            if not ready:
                raise FatalError("server", "no server answers at %s (%s); start it, or set server.command so "
                                           "the agent starts it" % (config.base_url, error))
            self.events.emit("log", level="info", msg="using the server already running at %s" % config.base_url,
                             source="agent")
            self._start_engine_metrics()
            return
        self._phase("server_start")
        log_file = open(self.server_log, "ab")
        try:
            self.server = ManagedProcess(command, shell, env, stdout=log_file, stderr=subprocess.STDOUT,
                                         cwd=self.job.dir, token=token)
        except OSError as e:
            raise FatalError("server", "could not start the server: %s" % e)
        finally:
            log_file.close()
        self.state.update(server_pgid=self.server.pgid, server_pid=self.server.pid,
                          server_start=self.server.start_ticks, server_token=token)
        self.events.emit("log", level="info", msg="started the server (pid %d): %s" % (self.server.pid, description),
                         source="agent")
        self.log_tail = LogTail(self.server_log, self.events)
        self.log_tail.start()
        self._wait_ready(config.ready_timeout_s)
        self.log_tail.mark_ready()
        self._phase("server_ready")
        self._start_engine_metrics()

    def _endpoint(self, base_url: str) -> Endpoint:
        config = self.job.server
        assert config is not None
        return Endpoint(base_url, config.api, config.model, config.request_fields, self._api_headers(config))

    @staticmethod
    def _api_headers(config: Any) -> Dict[str, str]:
        """`Authorization: Bearer <key>` from the environment variable server.api_key_env names (a hosted
        API such as OpenAI's); the key is read here on the host and is never in the job nor in an event."""
        name = config.api_key_env
        if not name:
            return {}
        key = os.environ.get(name, "").strip()
        if not key:
            raise FatalError("server", "server.api_key_env names %s, which is not set in the agent's environment on "
                                       "%s; set it there (the environment the SSH session gives the agent), as the "
                                       "key is never sent in the job" % (name, socket.gethostname()))
        return {"Authorization": "Bearer " + key}

    def _probe(self) -> Tuple[bool, str]:
        """(ready, what went wrong): the job's probe_paths (the engine preset's), else the endpoint's own."""
        paths = self.job.server.probe_paths if self.job.server is not None else None
        if not paths or self.job.server.sim:
            return self.endpoint.probe()
        return probe_paths(self.endpoint.base_url, paths, headers=self.endpoint.headers)

    def _start_engine_metrics(self) -> None:
        config = self.job.server
        if config is None or not config.metrics_url or not config.metrics:
            return
        self.engine_scraper = Scraper(config.metrics_url, config.metrics, self.job.telemetry.interval_s,
                                      self.events.emit, lambda: self.current_point, config.model)
        self.engine_scraper.start()

    def _server_output(self) -> str:
        return "\n".join(tail_lines(self.server_log, SERVER_LOG_TAIL_LINES))

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            self._check_cancel()
            code = self.server.exit_code()
            if code is not None:
                raise FatalError("server", "the server %s before it became ready" % describe_exit(code),
                                 detail=self._server_output())
            ready, error = self._probe()
            if ready:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FatalError("server", "the server did not become ready within %g s (%s)" % (timeout_s, error),
                                 detail=self._server_output())
            self._sleep(min(delay, remaining))
            delay = min(delay * 1.5, 1.0)

    def server_dead(self) -> bool:
        if self._server_failure is not None:
            return True
        if self.server is not None:
            code = self.server.exit_code()
            if code is not None:
                self._server_failure = "the server %s during the run" % describe_exit(code)
                return True
        return False

    def check_server_after_failure(self) -> None:
        """A request lost its connection: find out whether the server is gone. Other request threads that
        fail meanwhile wait here for the answer instead of burning through the prompts."""
        if self.endpoint is None:
            return
        with self._probe_lock:
            if self.server_dead() or time.monotonic() - self._last_probe < 1.0:
                return
            ready, error = self._probe()
            self._last_probe = time.monotonic()
            if ready:
                return
            if self.server is not None:
                # The process we started may be a wrapper (a shell) that outlives the server by a moment:
                # give it a second to exit, for the more telling message.
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and self.server.exit_code() is None:
                    time.sleep(0.05)
                if self.server_dead():
                    return
            self._server_failure = "the server at %s stopped answering (%s)" % (self.endpoint.base_url, error)

    def _report_server_failure(self, point: PointConfig) -> None:
        if self._server_failure_reported:
            return
        self._server_failure_reported = True
        fields = {"where": "server", "message": self._server_failure, "fatal": True,
                  "point": point.id}  # type: Dict[str, Any]
        if self.server is not None:
            time.sleep(0.3)  # let the server's last words reach server.log
            fields["detail"] = self._server_output()
        self.events.emit("error", **fields)

    # --- points ---

    def _run_points(self) -> None:
        for point in self.job.points:
            for repeat in range(point.repeats):
                self._check_cancel()
                if self.server_dead():
                    self._skip_point(point, repeat, "not run: %s" % self._server_failure)
                else:
                    self._run_point(point, repeat)

    def _skip_point(self, point: PointConfig, repeat: int, reason: str) -> None:
        self.events.emit("point", point=point.id, repeat=repeat, state="start")
        self.events.emit("point", point=point.id, repeat=repeat, state="end", status="error", requests=0,
                         errors=0, reason=reason)

    def _run_point(self, point: PointConfig, repeat: int) -> None:
        self.current_point = point.id
        self.events.emit("point", point=point.id, repeat=repeat, state="start")
        counts = PointCounts()
        status = "error"
        try:
            if not self._apply_cap(point, repeat):
                status = "error"
            elif point.workload.kind == "http":
                status = self._run_http_point(point, repeat, counts)
            elif point.workload.kind == "tool":
                status = run_tool_point(self, point, repeat, counts)
            else:
                status = self._run_command_point(point, repeat, counts)
        except Cancelled:
            status = "cancelled"
            raise
        finally:
            self.events.emit("point", point=point.id, repeat=repeat, state="end", status=status,
                             requests=counts.requests, errors=counts.errors, **counts.end_fields())
            self.current_point = None

    def _apply_cap(self, point: PointConfig, repeat: int) -> bool:
        """Set this point's power cap (or put the originals back for an uncapped point after a capped one).
        Returns False, after an `error` event, if the cap cannot be set."""
        if point.power_cap_w is None:
            if self.caps.originals is not None:
                self._phase("cap", point, repeat)
                try:
                    self.events.emit("cap", action="restore", gpus=self.caps.restore(self.telemetry))
                except (TelemetryError, OSError) as e:
                    self.events.emit("error", where="cap", fatal=False, point=point.id,
                                     message="could not put the original power limits back: %s" % e)
                    return False
            return True
        self._phase("cap", point, repeat)
        watts = point.power_cap_w
        for i in self.gpu_indices:
            info = self.gpu_info[i]
            low, high = info.get("min_limit_w"), info.get("max_limit_w")
            if (low is not None and watts < low) or (high is not None and watts > high):
                allowed = "%s-%s W" % ("%g" % low if low is not None else "?", "%g" % high if high is not None else "?")
                self.events.emit("error", where="cap", fatal=False, point=point.id,
                                 message="power cap %g W is outside GPU %d's range %s" % (watts, i, allowed))
                return False
        try:
            changes = self.caps.apply(self.telemetry, self.gpu_indices, watts)
        except (TelemetryError, OSError) as e:
            self.events.emit("error", where="cap", fatal=False, point=point.id,
                             message="could not set the power cap to %g W: %s" % (watts, e))
            return False
        self.events.emit("cap", action="set", gpus=changes)
        return True

    def _outcome(self, stop_reason: Optional[str], point: PointConfig) -> str:
        if stop_reason is None and self.server_dead():
            stop_reason = "server"  # it died as the last requests were sent
        if stop_reason == "cancelled":
            raise Cancelled()
        if stop_reason == "server":
            self._report_server_failure(point)
            return "error"
        if stop_reason == "timeout":
            self.events.emit("log", level="warn", msg="point %s reached its time limit (%g s)"
                             % (point.id, point.workload.time_limit_s), source="agent")
            return "timeout"
        return "ok"

    def _run_http_point(self, point: PointConfig, repeat: int, counts: PointCounts) -> str:
        workload = point.workload
        warmups = workload.warmup_requests
        specs = build_request_specs(workload, warmups + workload.num_prompts)
        deadline = time.monotonic() + workload.time_limit_s if workload.time_limit_s else None
        runner = LoadRunner(self, self.endpoint, point, repeat, counts, deadline)
        self.load_runner = runner
        if warmups:
            self._phase("warmup", point, repeat)
            stop = runner.run(specs[:warmups], warmup=True, first_index=0)
            if stop:
                return self._outcome(stop, point)
        self._phase("measure", point, repeat)
        stop = runner.run(specs[warmups:], warmup=False, first_index=warmups)
        self._phase("cooldown", point, repeat)
        return self._outcome(stop, point)

    def _run_command_point(self, point: PointConfig, repeat: int, counts: PointCounts,
                           command: Optional[str] = None) -> str:
        """Run the workload's command (or `command`, a tool's command line) as the point's load."""
        workload = point.workload
        env = dict(os.environ)
        if self.job.server is not None:
            env.update(self.job.server.env)
        env.update({"WATTBENCH_POINT": point.id, "WATTBENCH_RUN_DIR": self.run_dir})
        if self.endpoint is not None:
            env.update({"WATTBENCH_BASE_URL": self.endpoint.base_url, "WATTBENCH_MODEL": self.endpoint.model})
            authorization = self.endpoint.headers.get("Authorization", "")
            if authorization.startswith("Bearer "):
                env["OPENAI_API_KEY"] = authorization[len("Bearer "):]  # what vllm bench serve and others read
        log_path = os.path.join(self.run_dir, "workload.log")
        deadline = time.monotonic() + workload.time_limit_s if workload.time_limit_s else None
        self._phase("measure", point, repeat)
        log_file = open(log_path, "ab")
        try:
            process = ManagedProcess(command or workload.command, True, env, stdout=subprocess.PIPE, stderr=log_file,
                                     cwd=self.job.dir)
            self.workload_process = process  # the clean-up stops it, whichever way the run ends
        except OSError as e:
            log_file.close()
            self.events.emit("error", where="workload", fatal=False, point=point.id,
                             message="could not start the workload command: %s" % e)
            return "error"
        reader = threading.Thread(target=self._read_workload_output, name="workload-output",
                                  args=(process, log_file, point, repeat, counts), daemon=True)
        reader.start()
        stop = None
        while process.exit_code() is None:
            if self.cancel.is_set():
                stop = "cancelled"
            elif deadline is not None and time.monotonic() >= deadline:
                stop = "timeout"
            elif self.server_dead():
                stop = "server"
            if stop:
                process.stop(hurry=self.hurry)
                break
            self.cancel.wait(0.2)  # a cancel wakes this at once; the rest can wait a moment
        reader.join(timeout=5)
        log_file.close()
        self._phase("cooldown", point, repeat)
        code = process.exit_code()
        if stop is None and code != 0:
            self.events.emit("error", where="workload", fatal=False, point=point.id,
                             message="the workload command %s" % describe_exit(code),
                             detail="\n".join(tail_lines(log_path, SERVER_LOG_TAIL_LINES)))
            return "error"
        return self._outcome(stop, point)

    def _read_workload_output(self, process: ManagedProcess, log_file: Any, point: PointConfig, repeat: int,
                              counts: PointCounts) -> None:
        """`WATTBENCH {json}` lines become `request` events; everything else goes to workload.log."""
        index = 0
        line_no = 0
        for raw in process.proc.stdout:
            line_no += 1
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.startswith("WATTBENCH "):
                log_file.write(raw)
                log_file.flush()
                continue
            try:
                record = json.loads(line[len("WATTBENCH "):])
                if not isinstance(record, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as e:
                self.events.emit("log", level="warn", source="agent",
                                 msg="workload line is not WATTBENCH {json}: %s (%s)" % (line[:200], e))
                continue
            try:
                request = workload_request_event(record, point.id, repeat, index)
            except WorkloadLineError as e:
                # A wrong type would otherwise turn into wrong numbers ("128" + 1 concatenates): say which line.
                self.events.emit("error", where="workload", fatal=False, point=point.id,
                                 message="workload output line %d: %s; the line is not counted" % (line_no, e),
                                 detail=line[:500])
                continue
            self.events.emit("request", **request)
            index += 1
            counts.requests += 1
            if record.get("ok") is False or record.get("error"):
                counts.errors += 1


class WorkloadLineError(ValueError):
    """A `WATTBENCH {...}` line with a field of the wrong type or range."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_record(record: Dict[str, Any]) -> None:
    """Every field a workload may report, checked for type: nothing is coerced."""
    def bad(field: str, expected: str) -> WorkloadLineError:
        value = record[field]
        return WorkloadLineError("field %r is %s %s, expected %s"
                                 % (field, type(value).__name__, json.dumps(value)[:60], expected))

    for field in ("t_start", "t_end", "latency_s"):
        if field in record and not _is_number(record[field]):
            raise bad(field, "a number of seconds")
    if record.get("ttft_s") is not None and not _is_number(record["ttft_s"]):
        raise bad("ttft_s", "a number of seconds or null")
    for field in ("prompt_tokens", "output_tokens", "i"):
        value = record.get(field)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise bad(field, "a whole number >= 0")
    for field in ("ok", "warmup"):
        if field in record and not isinstance(record[field], bool):
            raise bad(field, "true or false")
    itl = record.get("itl_s")
    if itl is not None and not (isinstance(itl, list) and all(_is_number(x) for x in itl)):
        raise bad("itl_s", "a list of numbers of seconds")
    if record.get("error") is not None and not isinstance(record["error"], str):
        raise bad("error", "a message (string) or null")
    for field in ("latency_s", "ttft_s"):
        if _is_number(record.get(field)) and record[field] < 0:
            raise bad(field, "a duration >= 0")


def workload_request_event(record: Dict[str, Any], point_id: str, repeat: int, index: int) -> Dict[str, Any]:
    """A `request` event from a command workload's `WATTBENCH {...}` line (missing fields are inferred);
    raises WorkloadLineError for a field of the wrong type."""
    _check_record(record)
    latency = record.get("latency_s")
    t_end = record.get("t_end", now())
    t_start = record.get("t_start", t_end - latency if isinstance(latency, (int, float)) else t_end)
    ok = record.get("ok", not record.get("error"))
    event = {
        "point": point_id, "repeat": repeat, "i": record.get("i", index), "ok": bool(ok),
        "warmup": bool(record.get("warmup", False)), "t_start": t_start, "t_end": t_end,
        "prompt_tokens": record.get("prompt_tokens"), "output_tokens": record.get("output_tokens"),
        "ttft_s": record.get("ttft_s"),
        "latency_s": latency if latency is not None else t_end - t_start,
        "itl_s": record.get("itl_s") or [],
    }  # type: Dict[str, Any]
    if record.get("error"):
        event["error"] = str(record["error"])
    return event


def hello_fields(telemetry: Telemetry, run_id: Optional[str], gpus: List[Dict[str, Any]], interval_s: float,
                 simulated: bool) -> Dict[str, Any]:
    return {
        "run_id": run_id, "host": socket.gethostname(), "agent_version": AGENT_VERSION,
        "python": platform.python_version(), "pid": os.getpid(), "pgid": os.getpgid(0),
        "driver": telemetry.driver, "telemetry": dict({"source": telemetry.source, "interval_s": interval_s},
                                                      **telemetry.power_fields(gpus)),
        "simulated": simulated,
        "capabilities": telemetry.capabilities + ["http_load", "command_load", "sim_server"],
        "gpus": gpus,
    }
