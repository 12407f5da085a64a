"""Processes the agent starts: the inference server and command workloads, each in a process group of
its own; the server's log mirrored as events."""

import os
import re
import signal
import subprocess
import threading
import time
from typing import Any, Dict, Optional

from .events import EventWriter
from .util import group_alive


SERVER_STOP_GRACE_S = 10.0  # TERM, then KILL after this long (docs/protocol.md)


SERVER_LOG_TAIL_LINES = 20  # lines of server.log quoted in an error's `detail`


class ManagedProcess:
    """A child in its own session (so its own process group), stopped as a group: TERM, then KILL."""

    def __init__(self, command: Any, shell: bool, env: Dict[str, str], stdout: Any, stderr: Any,
                 cwd: Optional[str] = None) -> None:
        self.proc = subprocess.Popen(command, shell=shell, env=env, stdout=stdout, stderr=stderr,
                                     stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self.pgid = self.proc.pid  # start_new_session: the child leads a new group

    def exit_code(self) -> Optional[int]:
        return self.proc.poll()

    def stop(self, grace_s: float = SERVER_STOP_GRACE_S) -> None:
        """Stop the whole group, also when the leader is already gone but its children are not."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            self.proc.poll()
            if not group_alive(self.pgid):
                break
            try:
                os.killpg(self.pgid, sig)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the leader so it does not linger as a zombie
                if not group_alive(self.pgid):
                    break
                time.sleep(0.05)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


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
