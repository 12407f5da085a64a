"""The event file: a partial last line is ended before appending, `seq` continues after the last whole
event however far back it is, and a write that fails (a full disk) never raises and never stops sampling."""

import errno
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from unittest import mock

from . import helpers  # noqa: F401  (puts agent/ on sys.path)

from wattbench_agent.events import TEST_ENOSPC_ENV, EventWriter
from wattbench_agent.sampler import Sampler
from wattbench_agent.telemetry.base import Telemetry


def read_lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


class FakeTelemetry(Telemetry):
    source = "fake"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def gpus(self):
        return [{"index": 0, "name": "fake", "uuid": "GPU-FAKE-0"}]

    def sample(self, indices):
        self.calls += 1
        return time.time(), [{"i": i, "p_w": 100.0} for i in indices]


class EventFileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wattbench-events-test-")
        self.path = os.path.join(self.tmp, "events.ndjson")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_events(self, count, **fields):
        writer = EventWriter(self.path, mirror_stdout=False)
        for _ in range(count):
            writer.emit("log", level="info", msg="x", source="agent", **fields)
        writer.close()

    def test_appending_after_a_partial_line_starts_a_line_of_its_own(self):
        self.write_events(3)
        with open(self.path, "ab") as f:
            f.write(b'{"v":1,"seq":3,"t":1.0,"type":"sam')  # an agent died in the middle of this line
        writer = EventWriter(self.path, mirror_stdout=False)
        writer.emit("log", level="info", msg="resumed", source="agent")
        writer.close()
        lines = read_lines(self.path)
        self.assertEqual(lines[-1], b"", "the file ends with a newline")
        self.assertEqual(lines[3], b'{"v":1,"seq":3,"t":1.0,"type":"sam', "the stub stays a line of its own")
        event = json.loads(lines[4])
        self.assertEqual((event["seq"], event["msg"]), (3, "resumed"))
        self.assertEqual(len(lines), 6)

    def test_a_whole_event_missing_only_its_newline_counts(self):
        self.write_events(2)
        with open(self.path, "ab") as f:
            f.write(b'{"v":1,"seq":2,"t":1.0,"type":"log","level":"info","msg":"last","source":"agent"}')
        writer = EventWriter(self.path, mirror_stdout=False)
        writer.emit("log", level="info", msg="next", source="agent")
        writer.close()
        events = [json.loads(line) for line in read_lines(self.path) if line]
        self.assertEqual([e["seq"] for e in events], [0, 1, 2, 3])

    def test_seq_continues_after_an_event_longer_than_64_kib(self):
        writer = EventWriter(self.path, mirror_stdout=False)
        for _ in range(3):
            writer.emit("log", level="info", msg="x", source="agent")
        writer.emit("error", where="server", message="died", fatal=True, detail="y" * 200000)  # seq 3
        writer.close()
        writer = EventWriter(self.path, mirror_stdout=False)
        self.assertEqual(writer.emit("log", level="info", msg="after", source="agent")["seq"], 4)
        writer.close()

    def test_seq_found_before_a_long_garbled_tail(self):
        self.write_events(5)
        with open(self.path, "ab") as f:
            f.write(b"z" * 150000 + b"\n" + b"w" * 70000)  # garbage, more than 64 KiB of it, no whole event
        writer = EventWriter(self.path, mirror_stdout=False)
        self.assertEqual(writer.emit("log", level="info", msg="after", source="agent")["seq"], 5)
        writer.close()
        self.assertEqual(json.loads(read_lines(self.path)[-2])["seq"], 5)

    def test_a_failing_write_never_raises_and_is_reported_once(self):
        errors = []
        with mock.patch.dict(os.environ, {TEST_ENOSPC_ENV: "3"}):
            writer = EventWriter(self.path, mirror_stdout=False, on_error=errors.append)
        for n in range(6):
            event = writer.emit("log", level="info", msg="event %d" % n, source="agent")
            self.assertEqual(event["seq"], n)  # numbers go on: the reader sees the gap
        writer.close()
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0].errno, errno.ENOSPC)
        self.assertEqual(writer.write_error.errno, errno.ENOSPC)
        self.assertEqual(writer.lost, 3)
        lines = read_lines(self.path)
        self.assertEqual([json.loads(line)["seq"] for line in lines[:3]], [0, 1, 2])
        # the short write left half of event 3; a resumed writer ends that line and goes on from seq 3
        writer = EventWriter(self.path, mirror_stdout=False)
        self.assertEqual(writer.emit("log", level="info", msg="resumed", source="agent")["seq"], 3)
        writer.close()
        self.assertEqual(json.loads(read_lines(self.path)[-2])["msg"], "resumed")

    def test_sampler_keeps_sampling_when_events_cannot_be_written(self):
        telemetry = FakeTelemetry()
        failed = threading.Event()
        with mock.patch.dict(os.environ, {TEST_ENOSPC_ENV: "2"}):
            writer = EventWriter(self.path, mirror_stdout=False, on_error=lambda e: failed.set())
        sampler = Sampler(telemetry, [0], 0.02, writer, lambda: None)
        sampler.start()
        try:
            self.assertTrue(failed.wait(5), "the write failure was not reported")
            calls = telemetry.calls
            time.sleep(0.3)
            self.assertTrue(sampler.is_alive(), "the sampling thread died")
            self.assertGreater(telemetry.calls, calls, "sampling stopped")
        finally:
            sampler.stop()
            writer.close()


@unittest.skipUnless(hasattr(os, "geteuid") and os.geteuid() == 0, "mounting a tmpfs needs root")
class FullDiskEventFileTest(unittest.TestCase):
    """The same on a real full file system: a 64 KiB tmpfs."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wattbench-events-fs-")
        self.mounted = mount_tmpfs(self.tmp, "64k")
        if not self.mounted:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.skipTest("cannot mount a tmpfs here")

    def tearDown(self):
        umount_tmpfs(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_full_disk(self):
        path = os.path.join(self.tmp, "events.ndjson")
        errors = []
        writer = EventWriter(path, mirror_stdout=False, on_error=errors.append)
        for n in range(2000):  # ~200 KB: far more than fits
            writer.emit("log", level="info", msg="event %d %s" % (n, "x" * 60), source="agent")
        writer.close()
        self.assertEqual([e.errno for e in errors], [errno.ENOSPC])
        self.assertGreater(writer.lost, 0)
        lines = read_lines(path)
        whole = [json.loads(line) for line in lines[:-1] if line.endswith(b"}")]
        self.assertEqual([e["seq"] for e in whole], list(range(len(whole))))
        self.assertGreater(len(whole), 100)


def mount_tmpfs(directory, size):
    """Mounts a tmpfs of `size` on `directory` (root only); False if that is not possible here."""
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", directory],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return done.returncode == 0


def umount_tmpfs(directory):
    if subprocess.run(["umount", directory], stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["umount", "-l", directory], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    unittest.main()
