"""What every telemetry backend offers, and the errors they raise."""

from typing import Any, Dict, List, Tuple


class TelemetryUnavailable(Exception):
    """This backend cannot run on this host; the message says why."""


class TelemetryError(Exception):
    """A telemetry call failed (e.g. setting a power limit without permission)."""


class Telemetry:
    """One way of reading the GPUs: list them, sample them, read and set their power limits."""

    source = ""
    simulated = False

    def __init__(self) -> None:
        self.driver = "unknown"
        self.capabilities = []  # type: List[str]

    def gpus(self) -> List[Dict[str, Any]]:
        """Every GPU: {index, name, uuid, memory_mb, power_limit_w, default_limit_w, min_limit_w,
        max_limit_w, energy_counter}."""
        raise NotImplementedError

    def sample(self, indices: List[int]) -> Tuple[float, List[Dict[str, Any]]]:
        """(sample time, [{i, p_w, e_j?, util?, mem_util?, sm_mhz?, temp_c?, limit_w?}])."""
        raise NotImplementedError

    def get_limit_w(self, index: int) -> float:
        raise NotImplementedError

    def set_limit_w(self, index: int, watts: float) -> None:
        raise NotImplementedError

    def start(self, interval_s: float) -> None:
        """Called before sampling starts (streaming backends start their stream here)."""

    def close(self) -> None:
        pass
