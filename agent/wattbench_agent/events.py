"""The event stream: one JSON object per line in DIR/events.ndjson (docs/protocol.md, "Events")."""

import errno
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

from .util import json_safe, now
from .version import PROTOCOL_VERSION


# Tests only: after this many events the file behaves like a full disk (one short write, then ENOSPC).
TEST_ENOSPC_ENV = "WATTBENCH_TEST_EVENTS_ENOSPC_AFTER"

_BLOCK = 65536


class EventWriter:
    """Appends one JSON object per line to events.ndjson (each line one write(2), so it is in the file at
    once) and mirrors it to stdout.

    `seq` counts up without gaps; it continues after the last event when the file already holds events,
    so a second agent in the same run directory never repeats a number. A file that ends in the middle
    of a line (an agent died while writing it) gets that line terminated first, so the next event is a
    whole line of its own; the stub becomes one garbled line that the reader skips. The file is never
    truncated: the extension may be following it with `tail -F`, which would start over.

    Writing never raises. When a write fails (a full disk, a quota), the event is lost — its `seq` is not
    reused, so the reader sees the gap — `write_error` keeps the error, `lost` counts the events, and
    `on_error(error)` is called once, outside the lock (it may not emit). Later events are still tried."""

    def __init__(self, path: Optional[str], mirror_stdout: bool,
                 on_error: Optional[Callable[[OSError], None]] = None) -> None:
        self._lock = threading.Lock()
        self._mirror = mirror_stdout
        self.path = path
        self.on_error = on_error
        self.write_error = None  # type: Optional[OSError]
        self.lost = 0
        self._reported = False
        self._fd = None  # type: Optional[int]
        self._needs_newline = False  # the file ends inside a line: end it before the next event
        self._seq = 0
        self._written = 0
        self._test_fail_after = _test_fail_after()
        self._test_short_write_done = False
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._needs_newline = not _ends_with_newline(path)
            self._seq = next_seq(path)
            if self._needs_newline:
                self._write(b"", event=False)  # end the stub now (or before the next event, if this fails)

    def emit(self, event_type: str, t: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        with self._lock:
            event = {"v": PROTOCOL_VERSION, "seq": self._seq, "t": now() if t is None else t,
                     "type": event_type}
            event.update(fields)
            try:
                line = json.dumps(event, separators=(",", ":"), allow_nan=False)
            except ValueError:
                line = json.dumps(json_safe(event), separators=(",", ":"))
            if self._fd is not None:
                self._write((line + "\n").encode("utf-8"), event=True)
            self._seq += 1
            if self._mirror:
                try:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
                except (OSError, ValueError):
                    self._mirror = False  # the reader went away (e.g. SSH dropped); the file keeps everything
        self._report()
        return event

    def _write(self, data: bytes, event: bool) -> bool:
        """Appends `data` (after the newline a partial last line needs); on failure records the error."""
        if self._needs_newline:
            data = b"\n" + data
        done = 0
        try:
            while done < len(data):
                done += self._os_write(data[done:])
        except OSError as e:
            if done:
                self._needs_newline = True  # a short write left half a line
            if event:
                self.lost += 1
            self.write_error = e
            return False
        self._needs_newline = False
        if event:
            self._written += 1
        return True

    def _os_write(self, data: bytes) -> int:
        if self._test_fail_after is not None and self._written >= self._test_fail_after:
            if not self._test_short_write_done and len(data) > 1:
                self._test_short_write_done = True
                return os.write(self._fd, data[:len(data) // 2])  # what a filling disk does: a short write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        return os.write(self._fd, data)

    def _report(self) -> None:
        if self.write_error is None or self._reported:
            return
        callback = self.on_error
        if callback is None:
            return
        self._reported = True
        try:
            callback(self.write_error)
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                if self._needs_newline:
                    try:
                        os.write(self._fd, b"\n")
                    except OSError:
                        pass
                try:
                    os.close(self._fd)
                except OSError:
                    pass
                self._fd = None


def _test_fail_after() -> Optional[int]:
    value = os.environ.get(TEST_ENOSPC_ENV)
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _ends_with_newline(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except OSError:
        return True


def _seq_of(line: bytes) -> Optional[int]:
    try:
        seq = json.loads(line)["seq"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None


def next_seq(path: str) -> int:
    """One past the `seq` of the file's last whole event, however far back it is (the file is read from
    its end, a block at a time); 0 when it holds none. A last line without its newline counts as whole:
    the writer ends it before appending."""
    try:
        f = open(path, "rb")
    except OSError:
        return 0
    with f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        head = b""  # the bytes from `pos` up to the lines already looked at: a line whose start is not read yet
        while pos > 0:
            size = min(_BLOCK, pos)
            pos -= size
            f.seek(pos)
            parts = (f.read(size) + head).split(b"\n")
            head = parts[0] if pos > 0 else b""
            for line in reversed(parts if pos == 0 else parts[1:]):
                seq = _seq_of(line)
                if seq is not None:
                    return seq + 1
    return 0
