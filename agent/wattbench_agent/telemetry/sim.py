"""Simulated GPUs: their persistent state in a directory, the power log and its exact energy counter,
and the backend that samples them."""

import bisect
import contextlib
import fcntl
import os
import threading
import time
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..util import now, read_json_file, write_json_atomic
from ..version import AGENT_VERSION
from .base import Telemetry, TelemetryError, TelemetryUnavailable


class SimHardware:
    """The persistent state of the simulated GPUs, kept in a directory like real hardware keeps it:

    limits.json  the power limit of each GPU (survives agents and servers, as a real limit survives a
                 killed agent until the driver is reloaded)
    power.log    one line `t u p0 p1 ...` each time the power changes: from time t on, utilisation u and
                 GPU power p0, p1, ... watts, constant until the next line; the first line is the epoch
                 of the energy counters. The sim server appends, the sim backend and sim-truth read.
    lock         flock()ed while a line is appended or while a reader takes its sample time, so every
                 line older than a reader's sample time is in the file when the reader looks."""

    def __init__(self, directory: str, profile: Dict[str, Any]) -> None:
        self.dir = directory
        self.gpu = profile["gpu"]
        self.count = int(self.gpu["count"])
        self.default_limit_w = min(max(self.gpu["tdp_w"], self.gpu["min_limit_w"]), self.gpu["max_limit_w"])
        os.makedirs(directory, exist_ok=True)
        self.power_path = os.path.join(directory, "power.log")
        self.limits_path = os.path.join(directory, "limits.json")
        self._thread_lock = threading.Lock()
        self._lock_fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        self._limits_key = None  # type: Optional[Tuple[int, int, int]]
        self._limits = [self.default_limit_w] * self.count
        with self.locked():
            if not os.path.exists(self.power_path) or os.path.getsize(self.power_path) == 0:
                self._append_line(0.0, [self.gpu["idle_w"]] * self.count)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _append_line(self, util: float, powers: List[float]) -> float:
        t = now()
        line = "%r %r %s\n" % (t, util, " ".join(repr(float(p)) for p in powers))
        fd = os.open(self.power_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("ascii"))
        finally:
            os.close(fd)
        return t

    def append_power(self, util: float, powers: List[float]) -> float:
        """Record that the power changes now; returns the segment's start time."""
        with self.locked():
            return self._append_line(util, powers)

    def limits(self) -> List[float]:
        """Current power limit of every GPU (re-read only when limits.json changed)."""
        try:
            st = os.stat(self.limits_path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return [self.default_limit_w] * self.count
        if key != self._limits_key:
            try:
                stored = read_json_file(self.limits_path)
            except (OSError, ValueError):
                return list(self._limits)
            low, high = self.gpu["min_limit_w"], self.gpu["max_limit_w"]
            self._limits = [min(max(float(stored.get(str(i), self.default_limit_w)), low), high)
                            for i in range(self.count)]
            self._limits_key = key
        return list(self._limits)

    def set_limit(self, index: int, watts: float) -> None:
        if not 0 <= index < self.count:
            raise TelemetryError("simulated GPU %d not found (there are %d)" % (index, self.count))
        low, high = self.gpu["min_limit_w"], self.gpu["max_limit_w"]
        if not low <= watts <= high:
            raise TelemetryError("power limit %g W is outside GPU %d's range %g-%g W" % (watts, index, low, high))
        with self.locked():
            try:
                stored = read_json_file(self.limits_path)
            except (OSError, ValueError):
                stored = {}
            stored[str(index)] = float(watts)
            write_json_atomic(self.limits_path, stored)


class SimPowerLog:
    """Reads power.log incrementally and integrates it into one cumulative energy counter per GPU.

    The counter at time t is acc_k + p_k * (t - t_k) for the last segment k starting at or before t,
    acc_k being summed segment by segment in file order. The sim backend's samples and `sim-truth` both
    use exactly this arithmetic, so their numbers agree to the last bit."""

    def __init__(self, path: str, gpu_count: Optional[int] = None, keep_history: bool = False) -> None:
        self._file = open(path, "rb")
        self._partial = b""
        self.gpu_count = gpu_count
        self.t_last = None  # type: Optional[float]
        self.util_last = 0.0
        self.power_last = []  # type: List[float]
        self._acc_last = []  # type: List[float]
        self._history = [] if keep_history else None  # type: Optional[List[Tuple[float, List[float], List[float]]]]
        self._history_t = []  # type: List[float]

    def refresh(self) -> None:
        data = self._file.read()
        if not data:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for its end
        for line in lines:
            if line.strip():
                self._add(line.split())

    def _add(self, fields: List[bytes]) -> None:
        t, util = float(fields[0]), float(fields[1])
        powers = [float(x) for x in fields[2:]]
        if self.gpu_count is None:
            self.gpu_count = len(powers)
        if len(powers) < self.gpu_count:
            powers += [powers[-1] if powers else 0.0] * (self.gpu_count - len(powers))
        powers = powers[:self.gpu_count]
        if self.t_last is None:
            acc = [0.0] * self.gpu_count
        else:
            acc = [a + p * (t - self.t_last) for a, p in zip(self._acc_last, self.power_last)]
        self.t_last, self.util_last, self.power_last, self._acc_last = t, util, powers, acc
        if self._history is not None:
            self._history.append((t, acc, powers))
            self._history_t.append(t)

    def energy_now(self, t: float) -> List[float]:
        """Counters at time t, which must not be before the last segment read."""
        if self.t_last is None:
            return [0.0] * (self.gpu_count or 0)
        t = max(t, self.t_last)
        return [a + p * (t - self.t_last) for a, p in zip(self._acc_last, self.power_last)]

    def energy_at(self, t: float) -> List[float]:
        """Counters at any time t (needs keep_history)."""
        k = bisect.bisect_right(self._history_t, t) - 1
        if k < 0:
            return [0.0] * (self.gpu_count or 0)
        t_k, acc, powers = self._history[k]
        return [a + p * (t - t_k) for a, p in zip(acc, powers)]

    def close(self) -> None:
        self._file.close()


class SimTelemetry(Telemetry):
    """Simulated GPUs (SimProfile): power follows the sim server's load, the energy counter is the exact
    integral of that power, power limits persist in the sim directory."""

    source = "sim"
    simulated = True
    # p_w is the mean power since the previous sample (see sample()); integrate it as such.
    power_reading = "interval_average"

    def __init__(self, profile: Dict[str, Any], sim_dir: str) -> None:
        super().__init__()
        self.profile = profile
        self.sim_dir = sim_dir
        try:
            self.hardware = SimHardware(sim_dir, profile)
        except OSError as e:
            raise TelemetryUnavailable("the sim directory %s is not usable: %s" % (sim_dir, e))
        self._log = SimPowerLog(self.hardware.power_path, self.hardware.count)
        self.driver = "wattbench-sim %s" % AGENT_VERSION
        self.capabilities = ["power", "energy_counter", "power_limit", "util", "simulated"]
        self._uuid_tag = "%08x" % zlib.crc32(os.path.realpath(sim_dir).encode("utf-8"))
        self._previous = None  # type: Optional[Tuple[float, List[float]]]

    def gpus(self) -> List[Dict[str, Any]]:
        gpu = self.hardware.gpu
        limits = self.hardware.limits()
        return [{
            "index": i, "name": gpu["name"], "uuid": "GPU-SIM-%s-%d" % (self._uuid_tag, i),
            "memory_mb": gpu["memory_mb"], "power_limit_w": limits[i],
            "default_limit_w": self.hardware.default_limit_w, "min_limit_w": gpu["min_limit_w"],
            "max_limit_w": gpu["max_limit_w"], "energy_counter": True,
        } for i in range(self.hardware.count)]

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        with self.hardware.locked():
            self._log.refresh()
            t = now()  # taken under the lock: every segment that began before t has been read
            energy = self._log.energy_now(t)
            power, util = self._log.power_last, self._log.util_last
        limits = self.hardware.limits()
        # Power is reported as the average since the previous sample, as NVML reports an averaged power
        # on recent GPUs: a step-by-step simulated load then integrates correctly from samples alone.
        previous = self._previous
        self._previous = (t, energy)
        rows = []
        for i in indices:
            if not 0 <= i < self.hardware.count:
                raise TelemetryError("simulated GPU %d not found" % i)
            p_w = power[i]
            if previous is not None and t > previous[0]:
                p_w = (energy[i] - previous[1][i]) / (t - previous[0])
            rows.append({"i": i, "p_w": round(p_w, 3), "e_j": energy[i], "util": round(util * 100.0, 2),
                         "limit_w": limits[i]})
        return t, rows

    def get_limit_w(self, index: int) -> float:
        if not 0 <= index < self.hardware.count:
            raise TelemetryError("simulated GPU %d not found" % index)
        return self.hardware.limits()[index]

    def set_limit_w(self, index: int, watts: float) -> None:
        self.hardware.set_limit(index, watts)

    def close(self) -> None:
        self._log.close()
