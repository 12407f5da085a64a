"""Power caps, kept safe across crashes: the originals are saved (fsync'ed) before the first change and
restored on every way out, or by the next agent on the same host after one died hard.

The saved originals are per host, $WATTBENCH_HOME/caps-saved/HOST.json, each GPU named by its UUID (an
index can name another GPU after a reboot or on another node): a home shared over NFS by several nodes
holds one file per node, and a node restores only its own. HOST.lock is flock()ed while the file is
checked and created, and while a leftover one is restored, so two agents starting at once on one host
cannot both save a limit (the second would save the first's cap as "original"); the file itself is
created exclusively (a hard link of a fsync'ed temporary file), never replaced by a second agent."""

import os
import re
import time
from typing import Any, Dict, List, Optional, Tuple

from .job import JobError, parse_sim_profile
from .telemetry.base import Telemetry, TelemetryError, TelemetryUnavailable
from .telemetry.open import open_telemetry
from .telemetry.sim import SimTelemetry
from .util import (boot_id, create_json_exclusive, fsync_dir, host_name, locked_file, process_start_ticks,
                   read_json_file, same_process, wattbench_home, write_json_atomic)


CAPS_DIR_NAME = "caps-saved"


LEGACY_CAPS_FILE = "caps-saved.json"  # agents before caps-saved/: one file for every host sharing the home


def _file_name(host: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", host)
    return name if name.strip(".") else "_" + name


def caps_dir() -> str:
    return os.path.join(wattbench_home(), CAPS_DIR_NAME)


def caps_file_path(host: Optional[str] = None) -> str:
    return os.path.join(caps_dir(), _file_name(host or host_name()) + ".json")


def caps_lock_path(host: Optional[str] = None) -> str:
    return os.path.join(caps_dir(), _file_name(host or host_name()) + ".lock")


def legacy_caps_path() -> str:
    return os.path.join(wattbench_home(), LEGACY_CAPS_FILE)


class CapRestoreError(TelemetryError):
    """Some GPUs' limits could not be put back (the others were): `changes` those restored, `failures`
    [{i, uuid, message}] the rest, which stay in the saved file."""

    def __init__(self, message: str, changes: List[Dict[str, Any]], failures: List[Dict[str, Any]]) -> None:
        super().__init__(message)
        self.changes = changes
        self.failures = failures


class CapKeeper:
    """Power limits this agent changes. The originals are written to caps-saved/HOST.json (fsync'ed) before
    the first change, and the file is deleted only after they are back; an agent killed in between leaves
    the file for the next `run` or `restore-caps` on this host."""

    def __init__(self) -> None:
        self.host = host_name()
        self.path = caps_file_path(self.host)
        self.lock_path = caps_lock_path(self.host)
        self.originals = None  # type: Optional[Dict[int, float]]
        self._record = None  # type: Optional[Dict[str, Any]]

    def save_originals(self, telemetry: Telemetry, indices: List[int]) -> None:
        if self.originals is not None:
            return
        os.makedirs(caps_dir(), mode=0o700, exist_ok=True)
        with locked_file(self.lock_path):
            pending = _pending_message(self.path)
            if pending:
                raise TelemetryError(pending)
            uuids = {g["index"]: g.get("uuid") for g in telemetry.gpus()}
            gpus = [{"i": i, "uuid": uuids.get(i), "limit_w": telemetry.get_limit_w(i)} for i in sorted(indices)]
            record = {
                "v": 2, "host": self.host, "pid": os.getpid(), "pid_start": process_start_ticks(os.getpid()),
                "boot_id": boot_id(), "saved_at": time.time(), "source": telemetry.source, "gpus": gpus,
            }  # type: Dict[str, Any]
            if isinstance(telemetry, SimTelemetry):
                record["sim_dir"] = os.path.abspath(telemetry.sim_dir)
                record["sim_profile"] = telemetry.profile
            try:
                create_json_exclusive(self.path, record)
            except FileExistsError:
                raise TelemetryError("%s appeared meanwhile: another agent changes power limits on this host"
                                     % self.path)
        self._record = record
        self.originals = {g["i"]: g["limit_w"] for g in gpus}

    def apply(self, telemetry: Telemetry, indices: List[int], watts: float) -> List[Dict[str, Any]]:
        self.save_originals(telemetry, indices)
        changes = []
        for i in indices:
            before = telemetry.get_limit_w(i)
            telemetry.set_limit_w(i, watts)
            changes.append({"i": i, "from_w": before, "to_w": watts})
        return changes

    def restore(self, telemetry: Telemetry) -> List[Dict[str, Any]]:
        """Put the originals back, every GPU even when one fails, then forget them. Raises CapRestoreError
        when some failed: the file then keeps only those."""
        if self.originals is None or self._record is None:
            return []
        changes, failures = _restore_limits(telemetry, self._record["gpus"], by_index=True)
        if failures:
            left = [f.pop("entry") for f in failures]
            self._record = dict(self._record, gpus=left)
            self.originals = {g["i"]: g["limit_w"] for g in left}
            write_json_atomic(self.path, self._record, durable=True)
            raise CapRestoreError(_failure_text(failures), changes, failures)
        os.remove(self.path)
        fsync_dir(os.path.dirname(self.path))
        self.originals = None
        self._record = None
        return changes


def _failure_text(failures: List[Dict[str, Any]]) -> str:
    return "; ".join("GPU %s%s: %s" % (f["i"], " (%s)" % f["uuid"] if f.get("uuid") else "", f["message"])
                     for f in failures)


def _pending_message(path: str) -> Optional[str]:
    """Why no new originals may be saved on this host now (saved limits are pending), or None."""
    if os.path.exists(path):
        owner = None
        try:
            owner = read_json_file(path).get("pid")
        except (OSError, ValueError, AttributeError):
            pass
        return ("%s exists: power limits changed by agent pid %s on this host are not restored yet (wait for "
                "it, or run `restore-caps`)" % (path, owner))
    legacy = legacy_caps_path()
    if os.path.exists(legacy):
        try:
            host = read_json_file(legacy).get("host")
        except (OSError, ValueError, AttributeError):
            host = None
        if host is None or host == host_name():
            return ("%s exists: power limits saved by an older agent are not restored yet (run `restore-caps`)"
                    % legacy)
    return None


def _restore_limits(telemetry: Telemetry, gpus: List[Dict[str, Any]],
                    by_index: bool) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Put back each saved limit, found by its GPU's UUID (an index can name another GPU by now); every GPU
    is tried even when one fails. `by_index`: the same agent, same session: an index still names the same
    GPU if the UUIDs cannot be listed. Returns (changes [{i, from_w, to_w}], failures [{i, uuid, message,
    entry}])."""
    changes = []  # type: List[Dict[str, Any]]
    failures = []  # type: List[Dict[str, Any]]
    by_uuid = None  # type: Optional[Dict[str, int]]
    list_error = None  # type: Optional[str]
    if any(g.get("uuid") for g in gpus):
        try:
            by_uuid = {g["uuid"]: g["index"] for g in telemetry.gpus() if g.get("uuid")}
        except Exception as e:
            list_error = "cannot list the GPUs to find it by UUID: %s" % e
    for entry in sorted(gpus, key=lambda g: g["i"]):
        uuid = entry.get("uuid")
        try:
            index = int(entry["i"])
            original = float(entry["limit_w"])
            if uuid and by_uuid is not None:
                if uuid not in by_uuid:
                    raise TelemetryError("no GPU with UUID %s on this host (it was GPU %d)" % (uuid, index))
                index = by_uuid[uuid]
            elif uuid and not by_index:
                raise TelemetryError(list_error or "cannot find the GPU with UUID %s" % uuid)
            current = telemetry.get_limit_w(index)
            if abs(current - original) > 1e-6:
                telemetry.set_limit_w(index, original)
            changes.append({"i": index, "from_w": current, "to_w": original})
        except Exception as e:  # one GPU failing must not leave the others capped
            failures.append({"i": entry.get("i"), "uuid": uuid, "message": str(e) or type(e).__name__,
                             "entry": entry})
    return changes, failures


def restore_leftover_caps() -> Dict[str, Any]:
    """Restore the limits saved on this host by an agent that died hard (caps-saved/HOST.json; also an
    older agent's caps-saved.json when it names this host). Other hosts' files are left alone.

    Returns {status: nothing|restored|busy|failed, message, host, gpus: [{i, from_w, to_w}] (restored),
    errors: [{i, uuid, message}] (not restored; they stay saved)}."""
    host = host_name()
    candidates = [caps_file_path(host)]
    legacy = legacy_caps_path()
    if os.path.exists(legacy):
        try:
            legacy_host = read_json_file(legacy).get("host")
        except (OSError, ValueError, AttributeError):
            legacy_host = host  # unreadable: say so, as this host's
        if legacy_host == host:
            candidates.append(legacy)
    candidates = [p for p in candidates if os.path.exists(p)]
    if not candidates:
        return {"status": "nothing", "message": "no saved power limits to restore on %s" % host, "host": host,
                "gpus": [], "errors": []}
    results = []
    try:
        os.makedirs(caps_dir(), mode=0o700, exist_ok=True)
        with locked_file(caps_lock_path(host)):
            for path in candidates:
                results.append(_restore_file(path))
    except OSError as e:
        results.append({"status": "failed", "message": "cannot lock %s: %s" % (caps_lock_path(host), e),
                        "gpus": [], "errors": []})
    statuses = [r["status"] for r in results]
    status = next(s for s in ("failed", "busy", "restored", "nothing") if s in statuses)
    return {"status": status, "message": "; ".join(r["message"] for r in results), "host": host,
            "gpus": [g for r in results for g in r["gpus"]], "errors": [e for r in results for e in r["errors"]]}


def _restore_file(path: str) -> Dict[str, Any]:
    if not os.path.exists(path):
        return {"status": "nothing", "message": "no saved power limits to restore", "gpus": [], "errors": []}
    try:
        record = read_json_file(path)
        gpus = [{"i": int(g["i"]), "uuid": g.get("uuid"), "limit_w": float(g["limit_w"])} for g in record["gpus"]]
        source = record["source"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return {"status": "failed", "gpus": [], "errors": [], "message": "%s is unreadable (%s); check the "
                "GPUs' power limits by hand and delete it" % (path, e)}
    owner = record.get("pid")
    same_boot = not (record.get("boot_id") and boot_id() and record["boot_id"] != boot_id())
    if owner != os.getpid() and same_boot and same_process(owner, record.get("pid_start")):
        return {"status": "busy", "gpus": [], "errors": [], "message": "agent pid %s is still running and will "
                "restore its own power limits" % owner}
    try:
        profile = parse_sim_profile(record.get("sim_profile") or {}) if source == "sim" else None
        telemetry = open_telemetry(source, profile, record.get("sim_dir"))
    except (TelemetryUnavailable, JobError) as e:
        return {"status": "failed", "gpus": [], "errors": [], "message": "cannot restore the limits saved in "
                "%s: %s" % (path, e)}
    try:
        changes, failures = _restore_limits(telemetry, gpus, by_index=False)
        errors = []
        if failures:
            left = [f.pop("entry") for f in failures]
            errors = failures
            write_json_atomic(path, dict(record, gpus=left), durable=True)
        else:
            os.remove(path)
            fsync_dir(os.path.dirname(path))
    except OSError as e:
        return {"status": "failed", "gpus": [], "errors": [], "message": "restoring the limits saved in %s "
                "failed: %s" % (path, e)}
    finally:
        telemetry.close()
    saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("saved_at", 0)))
    summary = ", ".join("GPU %d %g W -> %g W" % (c["i"], c["from_w"], c["to_w"]) for c in changes)
    if errors:
        return {"status": "failed", "gpus": changes, "errors": errors,
                "message": "restored %d of %d power limits left by agent pid %s (saved %s)%s; NOT restored "
                           "(still saved in %s): %s" % (len(changes), len(gpus), owner, saved,
                                                         ": " + summary if summary else "", path,
                                                         _failure_text(errors))}
    return {"status": "restored", "gpus": changes, "errors": [],
            "message": "restored power limits left by agent pid %s (saved %s): %s" % (owner, saved, summary)}
