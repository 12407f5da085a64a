"""Sampling: every GPU of the run, every interval, one `sample` event per tick."""

import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .events import EventWriter
from .telemetry.base import Telemetry


class Sampler(threading.Thread):
    """Samples every GPU of the run every `interval_s` and writes one `sample` event per tick; `dt_s` is
    the interval really achieved (ticks are never bunched up to catch up after a delay)."""

    def __init__(self, telemetry: Telemetry, indices: List[int], interval_s: float, events: EventWriter,
                 current_point: Callable[[], Optional[str]],
                 inflight: Optional[Callable[[], Optional[int]]] = None) -> None:
        super().__init__(name="sampler", daemon=True)
        self.inflight = inflight
        self.telemetry = telemetry
        self.indices = indices
        self.interval_s = interval_s
        self.events = events
        self.current_point = current_point
        self._stop_event = threading.Event()
        self._sample_lock = threading.Lock()
        self._last_t = None  # type: Optional[float]

    def run(self) -> None:
        next_tick = time.monotonic()
        last_warning = 0.0
        while not self._stop_event.is_set():
            try:
                self.sample_now()
            except Exception as e:  # one bad reading must not end the measurement
                if time.monotonic() - last_warning > 30:
                    last_warning = time.monotonic()
                    self.events.emit("log", level="warn", msg="GPU sampling failed: %s" % e, source="agent")
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:
                next_tick = now
            self._stop_event.wait(next_tick - now)

    def sample_now(self) -> float:
        """Takes and writes one sample at once; returns its time. Called by the sampling thread on its
        ticks, and by the run at the edges of a measure window, so that a sample falls exactly on each
        edge and no sampling interval straddles one (what power did inside such an interval is unknown)."""
        with self._sample_lock:
            t, rows = self.telemetry.sample(self.indices)
            fields = {"gpus": rows}  # type: Dict[str, Any]
            point = self.current_point()
            if point is not None:
                fields["point"] = point
            fields["dt_s"] = round(t - self._last_t, 6) if self._last_t is not None else 0.0
            requests = self.inflight() if self.inflight is not None else None
            if requests is not None:
                fields["inflight"] = requests
            self.events.emit("sample", t=t, **fields)
            self._last_t = t
            return t

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
