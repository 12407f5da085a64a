"""The event stream: one JSON object per line in DIR/events.ndjson (docs/protocol.md, "Events")."""

import json
import os
import sys
import threading
import time
from typing import Any, Dict, Optional

from .util import json_safe
from .version import PROTOCOL_VERSION


class EventWriter:
    """Appends one JSON object per line to events.ndjson (flushed per line) and mirrors it to stdout.

    `seq` counts up without gaps; it continues after the last event when the file already holds events,
    so a second agent in the same run directory never repeats a number."""

    def __init__(self, path: Optional[str], mirror_stdout: bool) -> None:
        self._lock = threading.Lock()
        self._mirror = mirror_stdout
        self._file = open(path, "ab") if path else None
        self._seq = self._next_seq(path) if path else 0

    @staticmethod
    def _next_seq(path: str) -> int:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                lines = f.read().splitlines()
        except OSError:
            return 0
        for line in reversed(lines):
            try:
                return int(json.loads(line)["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                continue
        return 0

    def emit(self, event_type: str, t: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        with self._lock:
            event = {"v": PROTOCOL_VERSION, "seq": self._seq, "t": time.time() if t is None else t,
                     "type": event_type}
            event.update(fields)
            try:
                line = json.dumps(event, separators=(",", ":"), allow_nan=False)
            except ValueError:
                line = json.dumps(json_safe(event), separators=(",", ":"))
            data = (line + "\n").encode("utf-8")
            if self._file is not None:
                self._file.write(data)
                self._file.flush()
            self._seq += 1
            if self._mirror:
                try:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
                except (OSError, ValueError):
                    self._mirror = False  # the reader went away (e.g. SSH dropped); the file keeps everything
            return event

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
