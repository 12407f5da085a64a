"""NVIDIA GPUs through NVML (libnvidia-ml.so.1), called with ctypes.

Power: the instantaneous reading NVML_FI_DEV_POWER_INSTANT (nvmlDeviceGetFieldValues) where the driver has
it, else nvmlDeviceGetPowerUsage, which nvml.h documents as "power averaged over 1 sec interval" on Ampere
(except GA100) and newer and instantaneous on GA100 and older; each GPU's hello entry says which it is.
Energy: the cumulative counter nvmlDeviceGetTotalEnergyConsumption (mJ, Volta and newer)."""

import ctypes
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from ..util import now
from .base import Telemetry, TelemetryError, TelemetryUnavailable


# nvmlReturn_t (nvml.h)
NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_GPU_IS_LOST = 15


NVML_CLOCK_SM = 1


NVML_TEMPERATURE_GPU = 0


# Field ids of nvmlDeviceGetFieldValues (nvml.h, since NVML 12.2 / driver R535), values in milliwatts:
# 185 "GPU power averaged over 1 sec interval, supported on Ampere (except GA100) or newer architectures",
# 186 "Current GPU power, supported on all architectures". scopeId 0 is the GPU alone (1 would be the module).
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_POWER_SCOPE_GPU = 0


# nvmlDeviceGetMigMode's current mode
NVML_DEVICE_MIG_ENABLE = 1


# The window of the driver's averaged power (nvmlDeviceGetPowerUsage on Ampere except GA100 and newer,
# NVML_FI_DEV_POWER_AVERAGE): one second.
DRIVER_AVERAGE_WINDOW_S = 1.0


class _NvmlUtilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class _NvmlValue(ctypes.Union):
    """nvmlValue_t"""
    _fields_ = [("dVal", ctypes.c_double), ("siVal", ctypes.c_int), ("uiVal", ctypes.c_uint),
                ("ulVal", ctypes.c_ulong), ("ullVal", ctypes.c_ulonglong), ("sllVal", ctypes.c_longlong),
                ("usVal", ctypes.c_ushort)]


class _NvmlFieldValue(ctypes.Structure):
    """nvmlFieldValue_t: 40 bytes on 64-bit Linux (value at offset 32)."""
    _fields_ = [("fieldId", ctypes.c_uint), ("scopeId", ctypes.c_uint), ("timestamp", ctypes.c_longlong),
                ("latencyUsec", ctypes.c_longlong), ("valueType", ctypes.c_int),  # nvmlValueType_t
                ("nvmlReturn", ctypes.c_int),  # nvmlReturn_t
                ("value", _NvmlValue)]


# nvmlValueType_t -> the member of nvmlValue_t that holds it
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def _field_number(field: _NvmlFieldValue) -> Optional[float]:
    member = _VALUE_MEMBERS.get(field.valueType)
    return float(getattr(field.value, member)) if member else None


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
            raise TelemetryUnavailable("libnvidia-ml.so.1 not loadable (%s)" % e, absent=True)
        self._lib.nvmlErrorString.restype = ctypes.c_char_p
        try:
            self._call("nvmlInit_v2")
            count = ctypes.c_uint()
            self._call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        except NvmlError as e:
            raise TelemetryUnavailable("NVML did not start (%s)" % e)
        if count.value == 0:
            self._try("nvmlShutdown")
            raise TelemetryUnavailable("NVML found no GPUs", absent=True)
        self._handles = []  # type: List[ctypes.c_void_p]
        for index in range(count.value):
            handle = ctypes.c_void_p()
            try:
                self._call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(handle))
            except NvmlError as e:
                self._try("nvmlShutdown")
                hint = " (this user may not open /dev/nvidia%d)" % index if e.code == NVML_ERROR_NO_PERMISSION else ""
                raise TelemetryUnavailable("NVML cannot open GPU %d: %s%s" % (index, e, hint))
            self._handles.append(handle)
        buf = ctypes.create_string_buffer(96)
        if self._try("nvmlSystemGetDriverVersion", buf, ctypes.c_uint(96)):
            self.driver = buf.value.decode("utf-8", "replace")
        # Volta and newer keep a cumulative energy counter; older GPUs answer NOT_SUPPORTED.
        self._has_energy = [self._energy_mj(h) is not None for h in self._handles]
        self._power = [self._power_method(i, h) for i, h in enumerate(self._handles)]
        self._mig = [self._mig_mode(h) for h in self._handles]
        for index, mig in enumerate(self._mig):
            if mig:
                self.gpu_warnings.setdefault(index, []).append(
                    "GPU %d is in MIG mode: its power and energy are the whole GPU's, every MIG instance on it "
                    "included (MIG instances have no power reading of their own)" % index)
        self.capabilities = ["power", "power_limit", "util", "clocks", "temp"]
        if any(self._has_energy):
            self.capabilities.append("energy_counter")
        if any(p["method"] == "instant_field" for p in self._power):
            self.capabilities.append("power_instant")

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

    # --- power ---

    def _power_fields(self, handle: ctypes.c_void_p) -> Tuple[_NvmlFieldValue, _NvmlFieldValue]:
        """NVML_FI_DEV_POWER_INSTANT and NVML_FI_DEV_POWER_AVERAGE in one call; each has its own nvmlReturn."""
        values = (_NvmlFieldValue * 2)()
        values[0].fieldId, values[1].fieldId = NVML_FI_DEV_POWER_INSTANT, NVML_FI_DEV_POWER_AVERAGE
        values[0].scopeId = values[1].scopeId = NVML_POWER_SCOPE_GPU
        self._call("nvmlDeviceGetFieldValues", handle, ctypes.c_int(2), values)
        return values[0], values[1]

    def _compute_capability(self, handle: ctypes.c_void_p) -> Optional[Tuple[int, int]]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        if self._try("nvmlDeviceGetCudaComputeCapability", handle, ctypes.byref(major), ctypes.byref(minor)):
            return major.value, minor.value
        return None

    def _power_method(self, index: int, handle: ctypes.c_void_p) -> Dict[str, Any]:
        """How GPU `index`'s power is read, decided once so that its series is one kind of reading:
        {method: instant_field | usage, reading: instant | interval_average, window_s?}."""
        try:
            instant, _ = self._power_fields(handle)
            if instant.nvmlReturn == NVML_SUCCESS and _field_number(instant) is not None:
                return {"method": "instant_field", "reading": "instant"}
            why = "NVML_FI_DEV_POWER_INSTANT: %s" % (self._error_text(instant.nvmlReturn)
                                                     if instant.nvmlReturn != NVML_SUCCESS
                                                     else "value type %d" % instant.valueType)
        except NvmlError as e:
            why = str(e)  # a driver without nvmlDeviceGetFieldValues, or without these fields (before R535)
        capability = self._compute_capability(handle)
        # nvmlDeviceGetPowerUsage: "On Ampere (except GA100) or newer GPUs, the API returns power averaged over
        # 1 sec interval. On GA100 and older architectures, instantaneous power is returned." GA100 is compute
        # capability 8.0; a GPU whose capability is unknown is not claimed to be instantaneous.
        if capability is not None and capability <= (8, 0):
            return {"method": "usage", "reading": "instant"}
        self.gpu_warnings.setdefault(index, []).append(
            "GPU %d's power is nvmlDeviceGetPowerUsage, the driver's average over %g s: it has no instantaneous "
            "reading (%s)" % (index, DRIVER_AVERAGE_WINDOW_S, why))
        return {"method": "usage", "reading": "interval_average", "window_s": DRIVER_AVERAGE_WINDOW_S}

    def _read_power(self, index: int, handle: ctypes.c_void_p) -> Tuple[float, Optional[float]]:
        """(p_w, the driver's 1 s average when p_w is the instant reading and the driver has it)."""
        if self._power[index]["method"] == "instant_field":
            instant, average = self._power_fields(handle)
            if instant.nvmlReturn != NVML_SUCCESS:
                raise NvmlError("nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)", instant.nvmlReturn,
                                self._error_text(instant.nvmlReturn))
            p_w = _field_number(instant)
            if p_w is None:
                raise TelemetryError("NVML_FI_DEV_POWER_INSTANT came with value type %d" % instant.valueType)
            p_avg = _field_number(average) if average.nvmlReturn == NVML_SUCCESS else None
            return p_w / 1000.0, p_avg / 1000.0 if p_avg is not None else None
        milliwatts = ctypes.c_uint()
        self._call("nvmlDeviceGetPowerUsage", handle, ctypes.byref(milliwatts))
        return milliwatts.value / 1000.0, None

    def _mig_mode(self, handle: ctypes.c_void_p) -> Optional[bool]:
        current, pending = ctypes.c_uint(), ctypes.c_uint()
        try:
            self._call("nvmlDeviceGetMigMode", handle, ctypes.byref(current), ctypes.byref(pending))
        except NvmlError as e:
            # NOT_SUPPORTED: a GPU without MIG (before Ampere); a missing function: a driver before MIG.
            return False if e.code == NVML_ERROR_NOT_SUPPORTED else None
        return current.value == NVML_DEVICE_MIG_ENABLE

    # --- the interface ---

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
            info = {
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
                "power_reading": self._power[index]["reading"],
                "mig": self._mig[index],
            }  # type: Dict[str, Any]
            if "window_s" in self._power[index]:
                info["power_average_window_s"] = self._power[index]["window_s"]
            result.append(info)
        return result

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        t = now()
        rows = []
        for index in indices:
            handle = self._handle(index)
            try:
                p_w, p_avg_w = self._read_power(index, handle)
            except TelemetryError as e:
                rows.append({"i": index, "error": str(e)})  # this GPU only: the others are still read
                continue
            row = {"i": index, "p_w": p_w}  # type: Dict[str, Any]
            if p_avg_w is not None:
                row["p_avg_w"] = p_avg_w
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
