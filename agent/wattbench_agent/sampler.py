"""Sampling: every GPU of the run, every interval, one `sample` event per tick."""

import math
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .events import EventWriter
from .telemetry.base import Telemetry, TelemetryError


class NoReadings(TelemetryError):
    """No GPU of the run gave a reading this tick (each one's reason is already reported)."""


class Sampler(threading.Thread):
    """Samples every GPU of the run every `interval_s` and writes one `sample` event per tick; `dt_s` is
    the interval really achieved (ticks are never bunched up to catch up after a delay).

    A GPU whose reading fails is left out of that tick's sample (listed in `missing`) while the others are
    kept; a `log` warning says so once, and an `info` once it reads again. An unexpected error in a tick is
    an `error` event (not fatal, once per kind) and sampling goes on; should the thread itself break, a fatal
    `error` event says that sampling stopped (and `failure` holds why)."""

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
        self.failure = None  # type: Optional[str]
        self._stop_event = threading.Event()
        self._sample_lock = threading.Lock()
        self._last_t = None  # type: Optional[float]
        self._missing = {}  # type: Dict[int, int]  # GPU -> ticks in a row without a reading
        self._reported = set()  # type: Set[Tuple[str, str]]

    def run(self) -> None:
        try:
            for warning in self.telemetry.warnings_for(self.indices):
                self.events.emit("log", level="warn", msg=warning, source="agent")
            self._loop()
        except BaseException as e:  # the loop itself broke (e.g. the event file cannot be written)
            self.failure = "%s: %s" % (type(e).__name__, e)
            try:
                self.events.emit("error", where="sampler", fatal=True, detail=traceback.format_exc(),
                                 message="GPU sampling stopped: %s; no more samples are taken" % self.failure)
            except BaseException:
                pass

    def _loop(self) -> None:
        next_tick = time.monotonic()
        last_warning = 0.0
        while not self._stop_event.is_set():
            try:
                self.sample_now()
            except NoReadings:
                pass  # every GPU's failure was reported when it began
            except TelemetryError as e:  # the backend failed as a whole: one bad reading must not end the measurement
                if time.monotonic() - last_warning > 30:
                    last_warning = time.monotonic()
                    self.events.emit("log", level="warn", msg="GPU sampling failed: %s" % e, source="agent")
            except Exception as e:  # a bug, or something no backend expects: say so, once per kind, and go on
                self._report_unexpected(e)
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:
                next_tick = now
            self._stop_event.wait(next_tick - now)

    def _report_unexpected(self, error: Exception) -> None:
        kind = (type(error).__name__, str(error))
        if kind in self._reported or len(self._reported) >= 20:
            return
        self._reported.add(kind)
        self.events.emit("error", where="sampler", fatal=False, detail=traceback.format_exc(),
                         message="a GPU sampling tick failed: %s: %s; sampling goes on" % kind)

    def _note_readings(self, failed: Dict[int, str], read: List[int]) -> None:
        """Says once when a GPU stops giving readings, and once when it gives them again."""
        for index, reason in sorted(failed.items()):
            ticks = self._missing.get(index, 0)
            self._missing[index] = ticks + 1
            if ticks == 0:
                others = [i for i in self.indices if i != index]
                self.events.emit("log", level="warn", source="agent",
                                 msg="GPU %d gave no power reading (%s): it is left out of the samples until it "
                                     "reads again%s" % (index, reason, ", the other GPUs are still sampled"
                                                         if others else ""))
        for index in read:
            ticks = self._missing.pop(index, 0)
            if ticks:
                self.events.emit("log", level="info", source="agent",
                                 msg="GPU %d gives power readings again (after %d sample%s without)"
                                     % (index, ticks, "" if ticks == 1 else "s"))

    def sample_now(self) -> float:
        """Takes and writes one sample at once; returns its time. Called by the sampling thread on its
        ticks, and by the run at the edges of a measure window, so that a sample falls exactly on each
        edge and no sampling interval straddles one (what power did inside such an interval is unknown).
        Raises NoReadings when no GPU gave a reading (no sample is written then)."""
        with self._sample_lock:
            t, rows = self.telemetry.sample(self.indices)
            good = []  # type: List[Dict[str, Any]]
            failed = {}  # type: Dict[int, str]
            for row in rows:
                p_w = row.get("p_w")
                if isinstance(p_w, (int, float)) and not isinstance(p_w, bool) and math.isfinite(p_w):
                    good.append(row)
                else:
                    failed[row.get("i")] = row.get("error") or "no power reading"
            seen = {row.get("i") for row in rows}
            for index in self.indices:
                if index not in seen:
                    failed[index] = "no reading"
            self._note_readings(failed, [row["i"] for row in good])
            if not good:
                raise NoReadings("no GPU gave a power reading: %s"
                                 % "; ".join("GPU %s: %s" % item for item in sorted(failed.items())))
            fields = {"gpus": good}  # type: Dict[str, Any]
            if failed:
                fields["missing"] = sorted(failed)
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
