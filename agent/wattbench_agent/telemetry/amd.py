"""AMD GPUs through rocm-smi or amd-smi (best effort, untested here)."""

import json
import os
import re
import shutil
import subprocess
import time
from typing import Any, Dict, List, Optional, Tuple

from ..util import describe_exit, now
from .base import Telemetry, TelemetryError, TelemetryUnavailable


def _first_number(text: Any) -> Optional[float]:
    match = re.search(r"-?\d+(?:\.\d+)?", str(text))
    return float(match.group(0)) if match else None


class RocmSmiTelemetry(Telemetry):
    """AMD GPUs through `rocm-smi --json`.

    BEST EFFORT: written from ROCm's documentation and never run on AMD hardware by Wattbench's tests.
    rocm-smi's JSON keys differ between ROCm releases, so fields are found by the words in their names."""

    source = "amd-smi"

    def __init__(self) -> None:
        super().__init__()
        self.exe = os.environ.get("WATTBENCH_ROCM_SMI") or shutil.which("rocm-smi")
        if not self.exe or not os.access(self.exe, os.X_OK):
            raise TelemetryUnavailable("rocm-smi not on PATH", absent=True)
        try:
            info = self._json(["--showproductname", "--showmaxpower", "--showmeminfo", "vram"])
        except TelemetryError as e:
            raise TelemetryUnavailable(str(e))
        self._cards = self._cards_of(info)
        if not self._cards:
            raise TelemetryUnavailable("rocm-smi found no GPUs", absent=True)
        self._info = info
        self.driver = "rocm-smi"
        self.capabilities = ["power", "power_limit", "util", "temp"]

    def _json(self, args: List[str]) -> Dict[str, Any]:
        try:
            done = subprocess.run([self.exe] + args + ["--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  universal_newlines=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TelemetryError("rocm-smi failed: %s" % e)
        if done.returncode != 0:
            raise TelemetryError("rocm-smi %s: %s" % (describe_exit(done.returncode), done.stderr.strip()[-300:]))
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise TelemetryError("rocm-smi printed no JSON")

    @staticmethod
    def _cards_of(data: Dict[str, Any]) -> Dict[int, str]:
        cards = {}
        for key in data:
            match = re.match(r"card(\d+)$", key)
            if match:
                cards[int(match.group(1))] = key
        return cards

    @staticmethod
    def _find(entry: Dict[str, Any], *words: str) -> Optional[float]:
        for key, value in entry.items():
            if all(w in key.lower() for w in words):
                number = _first_number(value)
                if number is not None:
                    return number
        return None

    def gpus(self) -> List[Dict[str, Any]]:
        result = []
        for index, card in sorted(self._cards.items()):
            entry = self._info.get(card, {})
            name = next((v for k, v in entry.items() if "series" in k.lower() or "name" in k.lower()), "AMD GPU")
            total = self._find(entry, "vram", "total")
            limit = self._find(entry, "max", "power")
            result.append({
                "index": index, "name": str(name), "uuid": card,
                "memory_mb": int(total / (1024 * 1024)) if total else None,
                "power_limit_w": limit, "default_limit_w": None, "min_limit_w": None, "max_limit_w": None,
                "energy_counter": False,
            })
        return result

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = now()
        data = self._json(["--showpower", "--showuse", "--showtemp"])
        rows = []
        for index in indices:
            entry = data.get("card%d" % index, {})
            row = {"i": index, "p_w": self._find(entry, "power", "(w)")}  # type: Dict[str, Any]
            util = self._find(entry, "use", "%")
            temp = self._find(entry, "temperature")
            if util is not None:
                row["util"] = util
            if temp is not None:
                row["temp_c"] = temp
            rows.append(row)
        return t, rows

    def get_limit_w(self, index: int) -> float:
        entry = self._json(["--showmaxpower"]).get("card%d" % index, {})
        value = self._find(entry, "max", "power")
        if value is None:
            raise TelemetryError("rocm-smi reports no power cap for GPU %d" % index)
        return value

    def set_limit_w(self, index: int, watts: float) -> None:
        self._json(["-d", str(index), "--setpoweroverdrive", "%d" % round(watts), "--autorespond", "y"])


class AmdSmiTelemetry(RocmSmiTelemetry):
    """AMD GPUs through `amd-smi` (the successor of rocm-smi): power readings only, no power caps.

    BEST EFFORT and untested: the JSON layout is matched loosely (first number under a key naming power)."""

    def __init__(self) -> None:
        Telemetry.__init__(self)
        self.exe = os.environ.get("WATTBENCH_AMD_SMI") or shutil.which("amd-smi")
        if not self.exe or not os.access(self.exe, os.X_OK):
            raise TelemetryUnavailable("amd-smi not on PATH", absent=True)
        try:
            self._metrics = self._metric_list()
        except TelemetryError as e:
            raise TelemetryUnavailable(str(e))
        if not self._metrics:
            raise TelemetryUnavailable("amd-smi found no GPUs", absent=True)
        self.driver = "amd-smi"
        self.capabilities = ["power"]

    def _metric_list(self) -> List[Dict[str, Any]]:
        try:
            done = subprocess.run([self.exe, "metric", "--power", "--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  universal_newlines=True, timeout=30)
            data = json.loads(done.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError) as e:
            raise TelemetryError("amd-smi metric --power failed: %s" % e)
        return data if isinstance(data, list) else [data]

    @staticmethod
    def _power_of(entry: Any) -> Optional[float]:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if "power" in key.lower() and not isinstance(value, (dict, list)):
                    number = _first_number(value)
                    if number is not None:
                        return number
            for value in entry.values():
                found = AmdSmiTelemetry._power_of(value)
                if found is not None:
                    return found
        return None

    def gpus(self) -> List[Dict[str, Any]]:
        return [{"index": n, "name": "AMD GPU", "uuid": "amd-%d" % n, "memory_mb": None, "power_limit_w": None,
                 "default_limit_w": None, "min_limit_w": None, "max_limit_w": None, "energy_counter": False}
                for n in range(len(self._metrics))]

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = now()
        metrics = self._metric_list()
        return t, [{"i": i, "p_w": self._power_of(metrics[i]) if i < len(metrics) else None} for i in indices]

    def get_limit_w(self, index: int) -> float:
        raise TelemetryError("power caps through amd-smi are not implemented; install rocm-smi")

    def set_limit_w(self, index: int, watts: float) -> None:
        raise TelemetryError("power caps through amd-smi are not implemented; install rocm-smi")
