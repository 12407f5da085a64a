"""What every telemetry backend offers, and the errors they raise."""

from typing import Any, Dict, List, Tuple


class TelemetryUnavailable(Exception):
    """This backend cannot run on this host; the message says why. `absent` is true when its tool or library
    simply is not there (nothing worth telling when another backend is used instead)."""

    def __init__(self, message: str, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


class TelemetryError(Exception):
    """A telemetry call failed (e.g. setting a power limit without permission)."""


class Telemetry:
    """One way of reading the GPUs: list them, sample them, read and set their power limits."""

    source = ""
    simulated = False
    # What `p_w` is when a backend does not say it per GPU (a `power_reading` key in gpus()): `instant`, or
    # `interval_average` (a mean over the time before the reading).
    power_reading = "instant"

    def __init__(self) -> None:
        self.driver = "unknown"
        self.capabilities = []  # type: List[str]
        # Start-up facts a person should hear about (e.g. why another backend was not used): in the `hello`
        # event's telemetry.warnings and, once, as `log` warnings from the sampler.
        self.warnings = []  # type: List[str]
        self.gpu_warnings = {}  # type: Dict[int, List[str]]  # the same, about one GPU (e.g. MIG mode)

    def gpus(self) -> List[Dict[str, Any]]:
        """Every GPU: {index, name, uuid, memory_mb, power_limit_w, default_limit_w, min_limit_w,
        max_limit_w, energy_counter}, and where the backend knows them `power_reading` (`instant` |
        `interval_average`), `power_average_window_s` (the driver's averaging window) and `mig`."""
        raise NotImplementedError

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        """(sample time, [{i, p_w, p_avg_w?, e_j?, util?, mem_util?, sm_mhz?, temp_c?, limit_w?}]).

        A GPU whose reading failed gets a row {i, error} instead (no p_w): the others are still read. Raises
        TelemetryError only when nothing could be read at all."""
        raise NotImplementedError

    def get_limit_w(self, index: int) -> float:
        raise NotImplementedError

    def set_limit_w(self, index: int, watts: float) -> None:
        raise NotImplementedError

    def start(self, interval_s: float) -> None:
        """Called before sampling starts (streaming backends start their stream here)."""

    def close(self) -> None:
        pass

    def warnings_for(self, indices: List[int]) -> List[str]:
        """The start-up warnings that concern a run of these GPUs."""
        found = list(self.warnings)
        for index in indices:
            found.extend(self.gpu_warnings.get(index, []))
        return found

    def power_fields(self, gpus: List[Dict[str, Any]]) -> Dict[str, Any]:
        """The `hello` event's telemetry fields about the power readings of `gpus` (the run's, from gpus()):
        power_reading (`instant` only when every GPU's reading is instantaneous), power_average_window_s
        (when a driver's averaged reading is used) and warnings (when there are any)."""
        readings = [g["power_reading"] for g in gpus if g.get("power_reading")]
        if readings:
            reading = "instant" if all(r == "instant" for r in readings) else "interval_average"
        else:
            reading = self.power_reading
        fields = {"power_reading": reading}  # type: Dict[str, Any]
        windows = [g["power_average_window_s"] for g in gpus
                   if g.get("power_reading") == "interval_average" and g.get("power_average_window_s")]
        if windows:
            fields["power_average_window_s"] = max(windows)
        warnings = self.warnings_for([g["index"] for g in gpus if "index" in g])
        if warnings:
            fields["warnings"] = warnings
        return fields
