"""NVIDIA GPUs through the nvidia-smi command (one long-lived `nvidia-smi -lms` stream for samples).

Power: `power.draw.instant` where this nvidia-smi knows it (driver R535 and newer), else `power.draw`, which
`nvidia-smi --help-query-gpu` documents as "On Ampere or newer devices, returns average power draw over 1 sec.
On older devices, returns instantaneous power draw."; each GPU's hello entry says which it is. A driver that
does not know a field refuses the whole query with `Field "NAME" is not a valid field to query.`, so the
optional fields are tried at start-up and dropped one by one."""

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..util import describe_exit, now
from .base import Telemetry, TelemetryError, TelemetryUnavailable


SMI_FIELDS = ("index", "name", "uuid", "memory.total", "power.draw", "power.limit", "power.default_limit",
              "power.min_limit", "power.max_limit", "utilization.gpu", "utilization.memory", "clocks.sm",
              "temperature.gpu")

# Sampled where nvidia-smi knows them: the instant power and the driver's 1 s average (R535 and newer).
SMI_POWER_FIELDS = ("power.draw.instant", "power.draw.average")

# Asked once at start-up where nvidia-smi knows them.
SMI_STATIC_FIELDS = ("mig.mode.current", "compute_cap")

# power.draw and power.draw.average: the driver's average over one second (Ampere and newer).
DRIVER_AVERAGE_WINDOW_S = 1.0

_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')


class SmiFieldUnknown(TelemetryError):
    """This nvidia-smi does not know a field of the query."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _smi_number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # "[N/A]", "[Not Supported]", "[Unknown Error]", ...


def _compute_capability(text: Optional[str]) -> Optional[Tuple[int, int]]:
    match = re.match(r"\s*(\d+)\.(\d+)\s*$", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class NvidiaSmiTelemetry(Telemetry):
    """NVIDIA GPUs through the nvidia-smi command. Samples come from one long-lived `nvidia-smi -lms`
    process rather than a process per sample (nvidia-smi takes tens of milliseconds to start)."""

    source = "nvidia-smi"

    def __init__(self) -> None:
        super().__init__()
        override = os.environ.get("WATTBENCH_NVIDIA_SMI")
        if override:
            if not os.access(override, os.X_OK):
                raise TelemetryUnavailable("nvidia-smi not found at %s" % override, absent=True)
            self.exe = override
        else:
            found = shutil.which("nvidia-smi")
            if not found:
                raise TelemetryUnavailable("nvidia-smi not on PATH", absent=True)
            self.exe = found
        optional = list(SMI_POWER_FIELDS + SMI_STATIC_FIELDS)
        unknown = []  # type: List[str]
        while True:
            try:
                rows = self._query(SMI_FIELDS + tuple(optional) + ("driver_version",))
                break
            except SmiFieldUnknown as e:
                if e.field not in optional:
                    raise TelemetryUnavailable(str(e))
                optional.remove(e.field)
                unknown.append(e.field)
            except TelemetryError as e:
                raise TelemetryUnavailable(str(e))
        if not rows:
            raise TelemetryUnavailable("nvidia-smi found no GPUs", absent=True)
        self._static = {int(r["index"]): r for r in rows}
        self.driver = rows[0].get("driver_version") or "unknown"
        self.capabilities = ["power", "power_limit", "util", "clocks", "temp"]
        self._fields = SMI_FIELDS + tuple(f for f in SMI_POWER_FIELDS if f in optional)  # what a sample asks
        self._power = {index: self._power_method(row) for index, row in self._static.items()}
        if any(p["field"] == "power.draw.instant" for p in self._power.values()):
            self.capabilities.append("power_instant")
        for index, row in sorted(self._static.items()):
            if self._mig(row):
                self.gpu_warnings.setdefault(index, []).append(
                    "GPU %d is in MIG mode: its power is the whole GPU's, every MIG instance on it included "
                    "(MIG instances have no power reading of their own)" % index)
            if self._power[index]["reading"] == "interval_average":
                why = ("this nvidia-smi (driver %s) does not know power.draw.instant" % self.driver
                       if "power.draw.instant" in unknown else "its power.draw.instant is %s"
                       % row.get("power.draw.instant", "unknown"))
                self.gpu_warnings.setdefault(index, []).append(
                    "GPU %d's power is nvidia-smi's power.draw, the driver's average over %g s (%s)"
                    % (index, DRIVER_AVERAGE_WINDOW_S, why))
        self._stream = None  # type: Optional[subprocess.Popen]
        self._latest = {}  # type: Dict[int, Tuple[float, int, Dict[str, str]]]
        self._interval_s = 0.1

    def _exec(self, args: List[str]) -> Tuple[int, str, str]:
        try:
            done = subprocess.run([self.exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, universal_newlines=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TelemetryError("nvidia-smi %s failed: %s" % (" ".join(args), e))
        unknown = _INVALID_FIELD.search(done.stdout + "\n" + done.stderr)
        if unknown:
            raise SmiFieldUnknown(unknown.group(1), "nvidia-smi %s: %s" % (" ".join(args), unknown.group(0)))
        return done.returncode, done.stdout, done.stderr

    def _run(self, args: List[str]) -> str:
        code, stdout, stderr = self._exec(args)
        if code != 0:
            message = (stderr or stdout).strip().splitlines()
            raise TelemetryError("nvidia-smi %s %s: %s" % (" ".join(args), describe_exit(code),
                                                           message[-1] if message else "no output"))
        return stdout

    @staticmethod
    def _parse_rows(text: str, fields: Tuple[str, ...]) -> List[Dict[str, str]]:
        rows = []
        for values in csv.reader(io.StringIO(text), skipinitialspace=True):
            if len(values) == len(fields):
                rows.append(dict(zip(fields, [v.strip() for v in values])))
        return rows

    def _query(self, fields: Tuple[str, ...]) -> List[Dict[str, str]]:
        text = self._run(["--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])
        return self._parse_rows(text, fields)

    def _query_some(self, fields: Tuple[str, ...]) -> Dict[int, Dict[str, str]]:
        """The rows nvidia-smi printed, even when it failed for some GPU (e.g. one that fell off the bus)."""
        args = ["--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]
        code, stdout, stderr = self._exec(args)
        rows = {}
        for row in self._parse_rows(stdout, fields):
            try:
                rows[int(row["index"])] = row
            except ValueError:
                pass
        if code != 0 and not rows:
            message = (stderr or stdout).strip().splitlines()
            raise TelemetryError("nvidia-smi %s %s: %s" % (" ".join(args), describe_exit(code),
                                                           message[-1] if message else "no output"))
        return rows

    @staticmethod
    def _power_method(row: Dict[str, str]) -> Dict[str, Any]:
        """Which field is GPU's power, decided once so that its series is one kind of reading."""
        if _smi_number(row.get("power.draw.instant")) is not None:
            return {"field": "power.draw.instant", "reading": "instant"}
        capability = _compute_capability(row.get("compute_cap"))
        if capability is not None and capability < (8, 0):
            return {"field": "power.draw", "reading": "instant"}  # older than Ampere: instantaneous
        # Ampere and newer, or a GPU whose generation this nvidia-smi does not say: not claimed instantaneous.
        return {"field": "power.draw", "reading": "interval_average", "window_s": DRIVER_AVERAGE_WINDOW_S}

    @staticmethod
    def _mig(row: Dict[str, str]) -> Optional[bool]:
        if "mig.mode.current" not in row:
            return None  # this nvidia-smi does not know MIG
        return row["mig.mode.current"].strip().lower() == "enabled"  # "[N/A]": a GPU without MIG

    def gpus(self) -> List[Dict[str, Any]]:
        result = []
        for index, row in sorted(self._static.items()):
            memory = _smi_number(row["memory.total"])
            info = {
                "index": index, "name": row["name"], "uuid": row["uuid"],
                "memory_mb": int(memory) if memory is not None else None,
                "power_limit_w": _smi_number(row["power.limit"]),
                "default_limit_w": _smi_number(row["power.default_limit"]),
                "min_limit_w": _smi_number(row["power.min_limit"]),
                "max_limit_w": _smi_number(row["power.max_limit"]),
                "energy_counter": False,
                "power_reading": self._power[index]["reading"],
                "mig": self._mig(row),
            }  # type: Dict[str, Any]
            if "window_s" in self._power[index]:
                info["power_average_window_s"] = self._power[index]["window_s"]
            result.append(info)
        return result

    def start(self, interval_s: float) -> None:
        self._interval_s = interval_s
        try:
            self._stream = subprocess.Popen(
                [self.exe, "--query-gpu=" + ",".join(self._fields), "--format=csv,noheader,nounits",
                 "-lms", str(max(10, int(interval_s * 1000)))],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                universal_newlines=True, start_new_session=True)
        except OSError:
            self._stream = None
            return
        threading.Thread(target=self._read_stream, args=(self._stream,), name="nvidia-smi-stream",
                         daemon=True).start()

    def _read_stream(self, stream: subprocess.Popen) -> None:
        """Keeps each GPU's latest row with its time and the number of the period it came in (a period's
        rows come in index order, so an index not above the previous one starts the next period)."""
        period, previous = 0, None  # type: Tuple[int, Optional[int]]
        for line in stream.stdout:
            for row in self._parse_rows(line, self._fields):
                try:
                    index = int(row["index"])
                except ValueError:
                    continue
                if previous is None or index <= previous:
                    period += 1
                previous = index
                self._latest[index] = (now(), period, row)

    def _sample_row(self, index: int, row: Dict[str, str]) -> Dict[str, Any]:
        method = self._power.get(index) or self._power_method(row)
        field = method["field"]
        p_w = _smi_number(row.get(field))
        if p_w is None:
            return {"i": index, "error": "nvidia-smi reports %s of GPU %d as %s" % (field, index, row.get(field))}
        sample = {"i": index, "p_w": p_w}  # type: Dict[str, Any]
        if field == "power.draw.instant":
            average = _smi_number(row.get("power.draw.average"))
            if average is not None:
                sample["p_avg_w"] = average
        for key, name in (("util", "utilization.gpu"), ("mem_util", "utilization.memory"),
                          ("sm_mhz", "clocks.sm"), ("temp_c", "temperature.gpu"), ("limit_w", "power.limit")):
            value = _smi_number(row[name])
            if value is not None:
                sample[key] = value
        return sample

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = now()
        latest = dict(self._latest)
        seen = [latest[i] for i in indices if i in latest]
        rows = {}  # type: Dict[int, Dict[str, str]]
        if seen and max(when for when, _, _ in seen) >= t - max(1.0, 5 * self._interval_s):
            # The stream prints every GPU once per period. A GPU whose row is missing from the last two
            # periods while another GPU's is not has no reading now: its old row is not repeated.
            newest = max(period for _, period, _ in seen)
            rows = {i: latest[i][2] for i in indices if i in latest and latest[i][1] >= newest - 1}
        if not rows:
            # The stream is not running (or stalled): ask once.
            asked = self._query_some(self._fields)
            rows = {i: asked[i] for i in indices if i in asked}
        return t, [self._sample_row(i, rows[i]) if i in rows else
                   {"i": i, "error": "nvidia-smi gave no reading for GPU %d" % i} for i in indices]

    def get_limit_w(self, index: int) -> float:
        for row in self._query(("index", "power.limit")):
            if int(row["index"]) == index:
                value = _smi_number(row["power.limit"])
                if value is None:
                    raise TelemetryError("nvidia-smi reports no power limit for GPU %d" % index)
                return value
        raise TelemetryError("nvidia-smi did not report GPU %d" % index)

    def set_limit_w(self, index: int, watts: float) -> None:
        self._run(["-i", str(index), "-pl", "%g" % watts])

    def close(self) -> None:
        if self._stream is not None and self._stream.poll() is None:
            try:
                os.killpg(self._stream.pid, signal.SIGTERM)
                self._stream.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
