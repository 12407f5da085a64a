"""Power caps, kept safe across crashes: the originals are saved (fsync'ed) before the first change and
restored on every way out, or by the next agent after one died hard."""

import os
import socket
import time
from typing import Any, Dict, List, Optional

from .job import JobError, parse_sim_profile
from .telemetry.base import Telemetry, TelemetryError, TelemetryUnavailable
from .telemetry.open import open_telemetry
from .telemetry.sim import SimTelemetry
from .util import fsync_dir, process_start_ticks, read_json_file, same_process, wattbench_home, write_json_atomic


def caps_file_path() -> str:
    return os.path.join(wattbench_home(), "caps-saved.json")


class CapKeeper:
    """Power limits this agent changes. The originals are written to caps-saved.json (fsync'ed) before the
    first change, and the file is deleted only after they are back; an agent killed in between leaves
    the file for the next `run` or `restore-caps`."""

    def __init__(self) -> None:
        self.path = caps_file_path()
        self.originals = None  # type: Optional[Dict[int, float]]

    def save_originals(self, telemetry: Telemetry, indices: List[int]) -> None:
        if self.originals is not None:
            return
        if os.path.exists(self.path):
            raise TelemetryError("%s already exists: another agent holds changed power limits on this host "
                                 "(wait for it, or run `restore-caps`)" % self.path)
        originals = {i: telemetry.get_limit_w(i) for i in indices}
        record = {
            "v": 1, "pid": os.getpid(), "pid_start": process_start_ticks(os.getpid()),
            "host": socket.gethostname(), "saved_at": time.time(), "source": telemetry.source,
            "gpus": [{"i": i, "limit_w": w} for i, w in sorted(originals.items())],
        }
        if isinstance(telemetry, SimTelemetry):
            record["sim_dir"] = os.path.abspath(telemetry.sim_dir)
            record["sim_profile"] = telemetry.profile
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        write_json_atomic(self.path, record, durable=True)
        self.originals = originals

    def apply(self, telemetry: Telemetry, indices: List[int], watts: float) -> List[Dict[str, Any]]:
        self.save_originals(telemetry, indices)
        changes = []
        for i in indices:
            before = telemetry.get_limit_w(i)
            telemetry.set_limit_w(i, watts)
            changes.append({"i": i, "from_w": before, "to_w": watts})
        return changes

    def restore(self, telemetry: Telemetry) -> List[Dict[str, Any]]:
        """Put the originals back, then forget them (raises, keeping the file, if that fails)."""
        if self.originals is None:
            return []
        changes = _restore_limits(telemetry, self.originals)
        os.remove(self.path)
        fsync_dir(os.path.dirname(self.path))
        self.originals = None
        return changes


def _restore_limits(telemetry: Telemetry, originals: Dict[int, float]) -> List[Dict[str, Any]]:
    changes = []
    for i, original in sorted(originals.items()):
        current = telemetry.get_limit_w(i)
        if abs(current - original) > 1e-6:
            telemetry.set_limit_w(i, original)
        changes.append({"i": i, "from_w": current, "to_w": original})
    return changes


def restore_leftover_caps() -> Dict[str, Any]:
    """Restore the limits in a caps-saved.json left by an agent that died hard.

    Returns {status: nothing|restored|busy|failed, message, gpus: [{i, from_w, to_w}]}."""
    path = caps_file_path()
    if not os.path.exists(path):
        return {"status": "nothing", "message": "no saved power limits to restore", "gpus": []}
    try:
        record = read_json_file(path)
        originals = {int(g["i"]): float(g["limit_w"]) for g in record["gpus"]}
        source = record["source"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return {"status": "failed", "gpus": [], "message": "%s is unreadable (%s); check the GPUs' power limits "
                "by hand and delete it" % (path, e)}
    owner = record.get("pid")
    if owner != os.getpid() and same_process(owner, record.get("pid_start")):
        return {"status": "busy", "gpus": [], "message": "agent pid %s is still running and will restore its own "
                "power limits" % owner}
    try:
        profile = parse_sim_profile(record.get("sim_profile") or {}) if source == "sim" else None
        telemetry = open_telemetry(source, profile, record.get("sim_dir"))
    except (TelemetryUnavailable, JobError) as e:
        return {"status": "failed", "gpus": [], "message": "cannot restore the limits saved in %s: %s" % (path, e)}
    try:
        changes = _restore_limits(telemetry, originals)
        os.remove(path)
        fsync_dir(os.path.dirname(path))
    except (TelemetryError, OSError) as e:
        return {"status": "failed", "gpus": [], "message": "restoring the limits saved in %s failed: %s" % (path, e)}
    finally:
        telemetry.close()
    summary = ", ".join("GPU %d %g W -> %g W" % (c["i"], c["from_w"], c["to_w"]) for c in changes)
    return {"status": "restored", "gpus": changes,
            "message": "restored power limits left by agent pid %s (saved %s): %s"
                       % (owner, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("saved_at", 0))),
                          summary)}
