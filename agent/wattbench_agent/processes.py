"""Processes the agent starts: the inference server and command workloads, each in a process group of
its own; the server's log mirrored as events."""

import os
import re
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from .events import EventWriter
from .util import (boot_id, group_alive, group_members, process_environ, process_start_ticks, read_json_file,
                   same_process)


SERVER_STOP_GRACE_S = 10.0  # TERM, then KILL after this long (docs/protocol.md)


SERVER_LOG_TAIL_LINES = 20  # lines of server.log quoted in an error's `detail`


SERVER_TOKEN_ENV = "WATTBENCH_SERVER_TOKEN"  # in the server's environment, so its processes can be told apart


KILL_WAIT_S = 5.0  # after KILL, how long to wait for the group to be gone


def stop_group(pgid: int, grace_s: Optional[float] = None, hurry: Optional[threading.Event] = None,
               poll: Optional[Callable[[], Any]] = None) -> Optional[str]:
    """Stop process group `pgid`: TERM, then KILL once `grace_s` has passed (at once when `hurry` is set,
    before or during the wait). `poll` reaps a leader that is our child. Returns the last signal sent
    ("TERM" or "KILL"), None if the group was already gone; raises OSError if it cannot be signalled
    (PermissionError) or is still there after KILL."""
    grace_s = SERVER_STOP_GRACE_S if grace_s is None else grace_s
    sent = None  # type: Optional[str]
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        if poll is not None:
            poll()
        if not group_alive(pgid):
            return sent
        if sig == signal.SIGTERM and hurry is not None and hurry.is_set():
            continue  # told to hurry: straight to KILL
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return sent
        sent = signal.Signals(sig).name[3:]
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if poll is not None:
                poll()  # reap the leader so it does not linger as a zombie
            if not group_alive(pgid):
                return sent
            if sig == signal.SIGTERM and hurry is not None and hurry.is_set():
                break
            time.sleep(0.05)
    if poll is not None:
        poll()
    if group_alive(pgid):
        raise OSError("process group %d is still alive after SIGKILL" % pgid)
    return sent


class ManagedProcess:
    """A child in its own session (so its own process group), stopped as a group: TERM, then KILL.
    `start_ticks` (the leader's start time, /proc/PID/stat) tells it apart from a later process that
    reuses its pid; `token`, the value of SERVER_TOKEN_ENV in `env` if the caller put one there, marks
    every process of the group."""

    def __init__(self, command: Any, shell: bool, env: Dict[str, str], stdout: Any, stderr: Any,
                 cwd: Optional[str] = None, token: Optional[str] = None) -> None:
        self.token = token
        self.proc = subprocess.Popen(command, shell=shell, env=env, stdout=stdout, stderr=stderr,
                                     stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self.pgid = self.proc.pid  # start_new_session: the child leads a new group
        self.start_ticks = process_start_ticks(self.pid)  # the child exists (a zombie at worst) until reaped

    def exit_code(self) -> Optional[int]:
        return self.proc.poll()

    def stop(self, grace_s: Optional[float] = None, hurry: Optional[threading.Event] = None) -> Optional[str]:
        """Stop the whole group, also when the leader is already gone but its children are not: TERM, KILL
        after `grace_s` (default SERVER_STOP_GRACE_S), or at once once `hurry` is set.
        Returns None once the group is gone, else why it is not (never raises)."""
        problem = None  # type: Optional[str]
        if self.proc.returncode is not None and self.token and group_alive(self.pgid):
            # The leader died and was reaped earlier: the group id is ours only while one of ours is in it.
            if not any((process_environ(pid) or {}).get(SERVER_TOKEN_ENV) == self.token
                       for pid in group_members(self.pgid)):
                return None
        try:
            stop_group(self.pgid, grace_s, hurry, poll=self.proc.poll)
        except OSError as e:
            problem = str(e)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return problem


def stop_leftover_server(run_dir: str, grace_s: Optional[float] = None) -> Dict[str, Any]:
    """`stop-server`: stop the server a dead agent left running, after checking that its process group
    is still that server. Returns {status: nothing|stopped|busy|not_ours|unverified|failed, message, pgid,
    signal} (docs/protocol.md)."""
    state_path = os.path.join(run_dir, "state.json")
    result = {"status": "nothing", "message": "", "pgid": None, "signal": None}  # type: Dict[str, Any]

    def answer(status: str, message: str) -> Dict[str, Any]:
        result.update(status=status, message=message)
        return result

    if not os.path.exists(state_path):
        return answer("nothing", "%s does not exist: no server recorded" % state_path)
    try:
        state = read_json_file(state_path)
        pgid = state.get("server_pgid")
    except (OSError, ValueError, AttributeError) as e:
        return answer("failed", "cannot read %s: %s" % (state_path, e))
    if not isinstance(pgid, int) or isinstance(pgid, bool) or pgid <= 1:
        return answer("nothing", "the run started no server")
    result["pgid"] = pgid
    same_boot = not (state.get("boot_id") and boot_id() and state["boot_id"] != boot_id())
    if not same_boot:
        return answer("nothing", "the host restarted since the run; its server (process group %d) is gone" % pgid)
    agent = state.get("pid")
    if isinstance(agent, int) and agent != os.getpid() and same_process(agent, state.get("pid_start")):
        return answer("busy", "the agent (pid %d) is still running and stops its own server; cancel it first"
                      % agent)
    if not group_alive(pgid):
        return answer("nothing", "no server left running (process group %d is gone)" % pgid)
    verdict, why = _is_that_server(pgid, state)
    if verdict != "ours":
        return answer(verdict, "process group %d left alone: %s" % (pgid, why))
    try:
        sent = stop_group(pgid, grace_s)
    except OSError as e:
        return answer("failed", "could not stop the server's process group %d: %s" % (pgid, e))
    result["signal"] = sent
    if sent is None:
        return answer("nothing", "no server left running (process group %d is gone)" % pgid)
    return answer("stopped", "stopped the server (process group %d, %s)" % (pgid, why) +
                  ("; it needed SIGKILL" if sent == "KILL" else ""))


def _is_that_server(pgid: int, state: Dict[str, Any]) -> Tuple[str, str]:
    """("ours" | "not_ours" | "unverified", why): is process group `pgid` still the run's server?

    While the leader lives, its start time must be the one recorded. Once it is gone, any member that
    carries the run's server token in its environment proves the group is the server's: a pid (so a
    group id) is not reused while a group of that id has members."""
    recorded = state.get("server_start")
    token = state.get("server_token")
    leader = process_start_ticks(pgid)
    if leader is not None:
        if recorded is None:
            return "unverified", "state.json has no start time of the server (an older agent wrote it)"
        if leader != recorded:
            return "not_ours", "its leader, pid %d, started at tick %d, the server at %s: the pid was reused" \
                % (pgid, leader, recorded)
        return "ours", "its leader pid %d has the server's start time" % pgid
    if not token:
        return "unverified", "its leader is gone and state.json has no server token to recognise the rest by"
    for pid in group_members(pgid):
        env = process_environ(pid)
        if env is not None and env.get(SERVER_TOKEN_ENV) == token:
            return "ours", "its leader is gone; pid %d carries the server's token" % pid
    return "not_ours", "its leader is gone and none of its processes carries the server's token"


class LogTail(threading.Thread):
    """Mirrors new lines of server.log as `log` events: every line written before the server was ready,
    afterwards only lines that look like warnings or errors (a busy server can log a line per request)."""

    NOTABLE = re.compile(r"error|warn|exception|traceback|fatal|killed|out of memory", re.IGNORECASE)
    MAX_LINES_PER_READ = 200

    def __init__(self, path: str, events: EventWriter) -> None:
        super().__init__(name="server-log", daemon=True)
        self.path = path
        self.events = events
        self._ready_offset = None  # type: Optional[int]
        self._stop_event = threading.Event()

    def mark_ready(self) -> None:
        try:
            self._ready_offset = os.path.getsize(self.path)
        except OSError:
            self._ready_offset = 0

    def run(self) -> None:
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        partial = b""
        offset = 0  # file offset of the start of `partial`
        with f:
            while True:
                stopping = self._stop_event.wait(0.5)
                data = f.read()
                if data:
                    lines = (partial + data).split(b"\n")
                    partial = lines.pop()
                    for number, raw in enumerate(lines):
                        offset += len(raw) + 1
                        if number >= self.MAX_LINES_PER_READ:
                            continue
                        line = raw.decode("utf-8", "replace").rstrip()
                        notable = self.NOTABLE.search(line)
                        before_ready = self._ready_offset is None or offset <= self._ready_offset
                        if line and (before_ready or notable):
                            self.events.emit("log", level="warn" if notable else "info", msg=line[:500],
                                             source="server")
                if stopping:
                    return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)
