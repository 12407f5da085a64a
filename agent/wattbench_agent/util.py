"""Small helpers: paths, atomic JSON files, processes and their groups, the agent's own log."""

import contextlib
import json
import math
import os
import signal
import socket
import threading
import time
from typing import Any, List, Optional


def wattbench_home() -> str:
    return os.environ.get("WATTBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "wattbench")


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


def write_json_atomic(path: str, obj: Any, durable: bool = False) -> None:
    """Replace `path` in one step, so readers never see half a file; `durable` also survives power loss."""
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


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
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _proc_stat_fields(int(name))
            if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


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
