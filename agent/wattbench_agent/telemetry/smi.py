"""NVIDIA GPUs through the nvidia-smi command (one long-lived `nvidia-smi -lms` stream for samples)."""

import csv
import io
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..util import describe_exit
from .base import Telemetry, TelemetryError, TelemetryUnavailable


SMI_FIELDS = ("index", "name", "uuid", "memory.total", "power.draw", "power.limit", "power.default_limit",
              "power.min_limit", "power.max_limit", "utilization.gpu", "utilization.memory", "clocks.sm",
              "temperature.gpu")


def _smi_number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]", ...


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
        try:
            rows = self._query(SMI_FIELDS + ("driver_version",))
        except TelemetryError as e:
            raise TelemetryUnavailable(str(e))
        if not rows:
            raise TelemetryUnavailable("nvidia-smi found no GPUs", absent=True)
        self._static = {int(r["index"]): r for r in rows}
        self.driver = rows[0].get("driver_version") or "unknown"
        self.capabilities = ["power", "power_limit", "util", "clocks", "temp"]
        self._stream = None  # type: Optional[subprocess.Popen]
        self._latest = {}  # type: Dict[int, Tuple[float, Dict[str, str]]]
        self._interval_s = 0.1

    def _run(self, args: List[str]) -> str:
        try:
            done = subprocess.run([self.exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, universal_newlines=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TelemetryError("nvidia-smi %s failed: %s" % (" ".join(args), e))
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise TelemetryError("nvidia-smi %s %s: %s" % (" ".join(args), describe_exit(done.returncode),
                                                           message[-1] if message else "no output"))
        return done.stdout

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

    def gpus(self) -> List[Dict[str, Any]]:
        result = []
        for index, row in sorted(self._static.items()):
            memory = _smi_number(row["memory.total"])
            result.append({
                "index": index, "name": row["name"], "uuid": row["uuid"],
                "memory_mb": int(memory) if memory is not None else None,
                "power_limit_w": _smi_number(row["power.limit"]),
                "default_limit_w": _smi_number(row["power.default_limit"]),
                "min_limit_w": _smi_number(row["power.min_limit"]),
                "max_limit_w": _smi_number(row["power.max_limit"]),
                "energy_counter": False,
            })
        return result

    def start(self, interval_s: float) -> None:
        self._interval_s = interval_s
        try:
            self._stream = subprocess.Popen(
                [self.exe, "--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits",
                 "-lms", str(max(10, int(interval_s * 1000)))],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                universal_newlines=True, start_new_session=True)
        except OSError:
            self._stream = None
            return
        threading.Thread(target=self._read_stream, args=(self._stream,), name="nvidia-smi-stream",
                         daemon=True).start()

    def _read_stream(self, stream: subprocess.Popen) -> None:
        for line in stream.stdout:
            for row in self._parse_rows(line, SMI_FIELDS):
                try:
                    self._latest[int(row["index"])] = (time.time(), row)
                except ValueError:
                    pass

    @staticmethod
    def _sample_row(index: int, row: Dict[str, str]) -> Dict[str, Any]:
        sample = {"i": index, "p_w": _smi_number(row["power.draw"])}  # type: Dict[str, Any]
        for key, name in (("util", "utilization.gpu"), ("mem_util", "utilization.memory"),
                          ("sm_mhz", "clocks.sm"), ("temp_c", "temperature.gpu"), ("limit_w", "power.limit")):
            value = _smi_number(row[name])
            if value is not None:
                sample[key] = value
        return sample

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = time.time()
        freshest = t - max(1.0, 5 * self._interval_s)
        latest = self._latest
        if all(i in latest and latest[i][0] >= freshest for i in indices):
            return t, [self._sample_row(i, latest[i][1]) for i in indices]
        # The stream is not running (or stalled): ask once.
        rows = {int(r["index"]): r for r in self._query(SMI_FIELDS)}
        missing = [i for i in indices if i not in rows]
        if missing:
            raise TelemetryError("nvidia-smi did not report GPU %s" % missing)
        return t, [self._sample_row(i, rows[i]) for i in indices]

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
