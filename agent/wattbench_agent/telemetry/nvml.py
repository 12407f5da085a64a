"""NVIDIA GPUs through NVML (libnvidia-ml.so.1), called with ctypes."""

import ctypes
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from .base import Telemetry, TelemetryError, TelemetryUnavailable


NVML_SUCCESS = 0


NVML_ERROR_NOT_SUPPORTED = 3


NVML_ERROR_NO_PERMISSION = 4


NVML_CLOCK_SM = 1


NVML_TEMPERATURE_GPU = 0


class _NvmlUtilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class NvmlError(TelemetryError):
    def __init__(self, call: str, code: int, text: str) -> None:
        super().__init__("%s failed: %s (NVML error %d)" % (call, text, code))
        self.code = code


class NvmlTelemetry(Telemetry):
    """NVIDIA GPUs through libnvidia-ml.so.1 (the library nvidia-smi itself uses)."""

    source = "nvml"

    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get("WATTBENCH_NVML_LIB") or "libnvidia-ml.so.1"
        try:
            self._lib = ctypes.CDLL(path)
        except OSError as e:
            raise TelemetryUnavailable("libnvidia-ml.so.1 not loadable (%s)" % e)
        self._lib.nvmlErrorString.restype = ctypes.c_char_p
        try:
            self._call("nvmlInit_v2")
            count = ctypes.c_uint()
            self._call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        except NvmlError as e:
            raise TelemetryUnavailable("NVML did not start (%s)" % e)
        if count.value == 0:
            raise TelemetryUnavailable("NVML found no GPUs")
        self._handles = []  # type: List[ctypes.c_void_p]
        for index in range(count.value):
            handle = ctypes.c_void_p()
            self._call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(handle))
            self._handles.append(handle)
        buf = ctypes.create_string_buffer(96)
        if self._try("nvmlSystemGetDriverVersion", buf, ctypes.c_uint(96)):
            self.driver = buf.value.decode("utf-8", "replace")
        # Volta and newer keep a cumulative energy counter; older GPUs answer NOT_SUPPORTED.
        self._has_energy = [self._energy_mj(h) is not None for h in self._handles]
        self.capabilities = ["power", "power_limit", "util", "clocks", "temp"]
        if any(self._has_energy):
            self.capabilities.append("energy_counter")

    def _error_text(self, code: int) -> str:
        try:
            return (self._lib.nvmlErrorString(code) or b"").decode("utf-8", "replace")
        except Exception:
            return "error"

    def _call(self, name: str, *args: Any) -> None:
        fn = getattr(self._lib, name, None)
        if fn is None:
            raise NvmlError(name, NVML_ERROR_NOT_SUPPORTED, "not in this driver's NVML")
        code = fn(*args)
        if code != NVML_SUCCESS:
            raise NvmlError(name, code, self._error_text(code))

    def _try(self, name: str, *args: Any) -> bool:
        try:
            self._call(name, *args)
            return True
        except NvmlError:
            return False

    def _energy_mj(self, handle: ctypes.c_void_p) -> Optional[int]:
        value = ctypes.c_ulonglong()
        if self._try("nvmlDeviceGetTotalEnergyConsumption", handle, ctypes.byref(value)):
            return value.value
        return None

    def _uint(self, name: str, handle: ctypes.c_void_p, *extra: Any) -> Optional[int]:
        value = ctypes.c_uint()
        if self._try(name, handle, *(extra + (ctypes.byref(value),))):
            return value.value
        return None

    def _handle(self, index: int) -> ctypes.c_void_p:
        if not 0 <= index < len(self._handles):
            raise TelemetryError("GPU %d not found (NVML sees %d)" % (index, len(self._handles)))
        return self._handles[index]

    def gpus(self) -> List[Dict[str, Any]]:
        result = []
        for index, handle in enumerate(self._handles):
            name = ctypes.create_string_buffer(96)
            uuid = ctypes.create_string_buffer(96)
            self._try("nvmlDeviceGetName", handle, name, ctypes.c_uint(96))
            self._try("nvmlDeviceGetUUID", handle, uuid, ctypes.c_uint(96))
            memory = _NvmlMemory()
            low, high = ctypes.c_uint(), ctypes.c_uint()
            has_range = self._try("nvmlDeviceGetPowerManagementLimitConstraints", handle, ctypes.byref(low),
                                  ctypes.byref(high))
            limit = self._uint("nvmlDeviceGetPowerManagementLimit", handle)
            default = self._uint("nvmlDeviceGetPowerManagementDefaultLimit", handle)
            result.append({
                "index": index,
                "name": name.value.decode("utf-8", "replace"),
                "uuid": uuid.value.decode("utf-8", "replace"),
                "memory_mb": (memory.total // (1024 * 1024))
                if self._try("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory)) else None,
                "power_limit_w": limit / 1000.0 if limit is not None else None,
                "default_limit_w": default / 1000.0 if default is not None else None,
                "min_limit_w": low.value / 1000.0 if has_range else None,
                "max_limit_w": high.value / 1000.0 if has_range else None,
                "energy_counter": self._has_energy[index],
            })
        return result

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = time.time()
        rows = []
        for index in indices:
            handle = self._handle(index)
            milliwatts = ctypes.c_uint()
            self._call("nvmlDeviceGetPowerUsage", handle, ctypes.byref(milliwatts))
            row = {"i": index, "p_w": milliwatts.value / 1000.0}  # type: Dict[str, Any]
            if self._has_energy[index]:
                millijoules = self._energy_mj(handle)
                if millijoules is not None:
                    row["e_j"] = millijoules / 1000.0
            util = _NvmlUtilization()
            if self._try("nvmlDeviceGetUtilizationRates", handle, ctypes.byref(util)):
                row["util"] = util.gpu
                row["mem_util"] = util.memory
            sm = self._uint("nvmlDeviceGetClockInfo", handle, ctypes.c_int(NVML_CLOCK_SM))
            if sm is not None:
                row["sm_mhz"] = sm
            temp = self._uint("nvmlDeviceGetTemperature", handle, ctypes.c_int(NVML_TEMPERATURE_GPU))
            if temp is not None:
                row["temp_c"] = temp
            limit = self._uint("nvmlDeviceGetPowerManagementLimit", handle)
            if limit is not None:
                row["limit_w"] = limit / 1000.0
            rows.append(row)
        return t, rows

    def get_limit_w(self, index: int) -> float:
        value = ctypes.c_uint()
        self._call("nvmlDeviceGetPowerManagementLimit", self._handle(index), ctypes.byref(value))
        return value.value / 1000.0

    def set_limit_w(self, index: int, watts: float) -> None:
        try:
            self._call("nvmlDeviceSetPowerManagementLimit", self._handle(index), ctypes.c_uint(int(round(watts * 1000))))
        except NvmlError as e:
            if e.code == NVML_ERROR_NO_PERMISSION:
                raise TelemetryError("setting the power limit of GPU %d needs root (%s)" % (index, e))
            raise

    def close(self) -> None:
        self._try("nvmlShutdown")
