"""Small helpers: paths, atomic JSON files, processes and their groups, the agent's own log."""

import contextlib
import errno
import fcntl
import json
import math
import os
import signal
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional


# The agent's clock for event times: the wall clock as it read when the agent started, moved on by the
# monotonic clock. A step of the wall clock mid-run (NTP, an admin's `date -s`) then moves no interval:
# the summary integrates power and counts tokens over differences of these times.
_WALL_AT_START = time.time()
_MONO_AT_START = time.monotonic()


def now() -> float:
    """Seconds since the epoch as of the agent's start, advanced monotonically."""
    return _WALL_AT_START + (time.monotonic() - _MONO_AT_START)


def clock_anchor() -> List[float]:
    """What now() counts from (the wall clock at the agent's start, and the monotonic clock then), for a
    process of the agent's own that stamps events: CLOCK_MONOTONIC is one clock for the whole machine."""
    return [_WALL_AT_START, _MONO_AT_START]


def adopt_clock_anchor(anchor: List[float]) -> None:
    """now() on the agent's anchor: a load worker started later would read a wall clock that may have been
    stepped since (NTP, `date -s`), and its request times would be off the agent's power samples by the step."""
    global _WALL_AT_START, _MONO_AT_START
    _WALL_AT_START, _MONO_AT_START = float(anchor[0]), float(anchor[1])


def wattbench_home() -> str:
    return os.environ.get("WATTBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "wattbench")


def host_name() -> str:
    """This host's name, as caps-saved/ keys it. WATTBENCH_TEST_HOSTNAME stands in for it in tests only (two
    "hosts" sharing one home on one machine); nothing else sets it."""
    return os.environ.get("WATTBENCH_TEST_HOSTNAME") or socket.gethostname()


def boot_id() -> Optional[str]:
    """This boot's id (Linux): start ticks and pids only mean something within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def default_sim_dir() -> str:
    return os.environ.get("WATTBENCH_SIM_DIR") or os.path.join(wattbench_home(), "sim")


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_text(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _write_tmp(path: str, data: bytes, durable: bool) -> str:
    """`data` in a new file beside `path` (removed again if writing it fails, e.g. on a full disk)."""
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return tmp


def write_json_atomic(path: str, obj: Any, durable: bool = False) -> None:
    """Replace `path` in one step, so readers never see half a file; `durable` also survives power loss."""
    tmp = _write_tmp(path, _json_text(obj), durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def create_json_exclusive(path: str, obj: Any) -> None:
    """Create `path` holding `obj`, durably and in one step, only if it does not exist yet (FileExistsError
    otherwise): written to a temporary file, fsync'ed, then hard-linked into place, which fails rather than
    replace an existing file (also on NFS, where O_EXCL was long unreliable)."""
    tmp = _write_tmp(path, _json_text(obj), durable=True)
    try:
        os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    fsync_dir(os.path.dirname(path) or ".")


def write_json_in_place(path: str, obj: Any) -> None:
    """Overwrite `path`'s bytes where they are: no new file, so it works on a full disk when the new text
    fits in the blocks the old one holds (a few hundred bytes of state always do). Not atomic: only for
    when write_json_atomic cannot work."""
    data = _json_text(obj)
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], done)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked_file(path: str, timeout_s: float = 30.0) -> Iterator[None]:
    """Holds an exclusive flock() on `path` (created if missing), waiting at most `timeout_s` for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise OSError(errno.EWOULDBLOCK, "%s stayed locked for %g s by another agent" % (path, timeout_s))
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_json_file(path: str) -> Any:
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _proc_stat_fields(pid: int) -> Optional[List[str]]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ..., starttime at 19, ...]."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def process_start_ticks(pid: int) -> Optional[int]:
    fields = _proc_stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def pid_alive(pid: Optional[int]) -> bool:
    """True if the process exists and is not a zombie (an unreaped dead process)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat_fields(pid)
    return fields is None or fields[0] not in ("Z", "X")


def same_process(pid: Optional[int], start_ticks: Optional[int]) -> bool:
    """True if `pid` is alive and is still the process that had `start_ticks` (pids get reused)."""
    if not pid_alive(pid):
        return False
    if start_ticks is None:
        return True
    return process_start_ticks(pid) == start_ticks


def group_members(pgid: int) -> List[int]:
    """The live (non-zombie) processes of process group `pgid` (Linux /proc)."""
    members = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return members
    for name in names:
        if name.isdigit():
            fields = _proc_stat_fields(int(name))
            if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                members.append(int(name))
    return members


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process is left in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    return bool(group_members(pgid))


def process_environ(pid: int) -> Optional[Dict[str, str]]:
    """The environment `pid` started with (None if it cannot be read, e.g. another user's process)."""
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def tail_lines(path: str, count: int) -> List[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:]


def free_loopback_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        return "was killed by %s" % name
    return "exited with code %d" % code


class DiagLog:
    """The agent's own diagnostics (DIR/agent.log): internals and tracebacks that are not events."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path

    def write(self, message: str) -> None:
        if not self.path:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("%s [%d] %s\n" % (stamp, os.getpid(), message))
        except OSError:
            pass
