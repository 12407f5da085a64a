"""The telemetry backend for a source name; `auto` tries the real ones in turn."""

from typing import Any, Dict, Optional

from ..job import parse_sim_profile
from ..util import default_sim_dir
from .amd import AmdSmiTelemetry, RocmSmiTelemetry
from .base import Telemetry, TelemetryUnavailable
from .nvml import NvmlTelemetry
from .sim import SimTelemetry
from .smi import NvidiaSmiTelemetry


BACKEND_NAMES = {NvmlTelemetry: "NVML", NvidiaSmiTelemetry: "nvidia-smi", RocmSmiTelemetry: "rocm-smi",
                 AmdSmiTelemetry: "amd-smi"}


def open_telemetry(source: str, sim_profile: Optional[Dict[str, Any]] = None,
                   sim_dir: Optional[str] = None) -> Telemetry:
    """The backend for `source`; `auto` tries NVML, nvidia-smi, then AMD's tools, and the one it uses warns
    why it is not an earlier one that is there but failed (e.g. NVML cannot open a GPU).

    Raises TelemetryUnavailable saying why nothing could be used."""
    if source == "sim":
        return SimTelemetry(sim_profile or parse_sim_profile({}), sim_dir or default_sim_dir())
    single = {"nvml": (NvmlTelemetry,), "nvidia-smi": (NvidiaSmiTelemetry,),
              "amd-smi": (RocmSmiTelemetry, AmdSmiTelemetry)}
    if source in single:
        reasons = []
        for backend in single[source]:
            try:
                return backend()
            except TelemetryUnavailable as e:
                reasons.append(str(e))
        raise TelemetryUnavailable("telemetry source %s unavailable: %s" % (source, ", ".join(reasons)))
    if source != "auto":
        raise TelemetryUnavailable("unknown telemetry source %r" % source)
    reasons = []
    passed_over = []  # backends that are there but failed: the one used says why it is not them
    for backend in (NvmlTelemetry, NvidiaSmiTelemetry, RocmSmiTelemetry, AmdSmiTelemetry):
        try:
            telemetry = backend()
        except TelemetryUnavailable as e:
            reasons.append(str(e))
            if not e.absent:
                passed_over.append("%s not used (%s)" % (BACKEND_NAMES[backend], e))
            continue
        telemetry.warnings[:0] = ["%s: telemetry.source auto falls back to %s" % (why, BACKEND_NAMES[backend])
                                  for why in passed_over]
        return telemetry
    error = TelemetryUnavailable("no GPU telemetry found: %s, %s; set telemetry.source: sim to simulate"
                                 % (reasons[0], reasons[1]))
    error.detail = "AMD: %s" % "; ".join(reasons[2:])  # type: ignore[attr-defined]
    raise error
