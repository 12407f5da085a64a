"""Kernel receive stamps (stamped.py): a token's arrival is when its bytes reached the host, so a loop that
was busy when they came does not make TTFT late; without them (asyncio's transport) it does, which is what
the test measures against. The clock bridge on its own."""

import asyncio
import struct
import time
import unittest
from typing import Dict, List, Tuple

from .helpers import serve_on_loopback  # noqa: F401  (helpers puts agent/ on sys.path)
from .test_load_streams import SSE_CHUNKED, LAST_CHUNK, DONE, chunked, sse, text_chunk, tokens, workload

from wattbench_agent import stamped, util
from wattbench_agent.client import Endpoint, Feeder, stream_request_async
from wattbench_agent.prompts import RequestSpec


class TimedServer:
    """Answers each POST with a token 150 ms after reading the request, then a finish 100 ms later, and
    keeps when it read each request and sent each token (time.monotonic(), the same clock as the agent's)."""

    def __init__(self) -> None:
        self.sends = []  # type: List[Tuple[float, float]]  # (request read, first token sent)
        self.server, port = serve_on_loopback(self._handle)
        self.base_url = "http://127.0.0.1:%d/v1" % port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler) -> None:
        rfile = handler.rfile
        length = 0
        while True:
            line = rfile.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            if line in (b"\r\n", b""):
                break
        rfile.read(length)
        read = time.monotonic()
        sock = handler.connection
        sock.sendall(SSE_CHUNKED)
        time.sleep(0.15)
        sent = time.monotonic()
        sock.sendall(chunked(tokens(" a")))
        self.sends.append((read, sent))
        time.sleep(0.1)
        sock.sendall(chunked(sse(text_chunk(" b", finish="length"))) + chunked(DONE) + LAST_CHUNK)


class KernelStampTest(unittest.TestCase):
    def measure(self, kernel_stamps: bool) -> Tuple[Dict, float, Feeder]:
        """One request on a loop that is busy (a 120 ms callback) from 100 ms after sending until
        after the first token came: (the result, the true TTFT, the feeder)."""
        server = TimedServer()
        self.addCleanup(server.close)

        async def main() -> Tuple[Dict, Feeder]:
            loop = asyncio.get_running_loop()
            feeder = Feeder(loop, kernel_stamps=kernel_stamps)
            loop.call_later(0.1, time.sleep, 0.12)  # busy through the first token's arrival at ~150 ms
            result = await stream_request_async(Endpoint(server.base_url, "completions", "m"),
                                                RequestSpec("hi", 1, 2), workload(max_tokens=2), feeder)
            feeder.close_idle()
            return result, feeder

        result, feeder = asyncio.run(main())
        self.assertTrue(result["ok"], result)
        _, first = server.sends[0]
        # the true TTFT: from the request's t_start (on the agent's clock, util.now()) to the server's send
        m_start = result["t_start"] - util._WALL_AT_START + util._MONO_AT_START
        return result, first - m_start, feeder

    def test_a_busy_loop_does_not_delay_kernel_stamped_arrivals(self):
        if not stamped.kernel_stamps_possible():
            self.skipTest("this platform gives no kernel receive stamps")
        result, true_ttft, feeder = self.measure(kernel_stamps=True)
        self.assertGreater(feeder.reads.kernel, 0)
        self.assertEqual(feeder.reads.loop, 0)
        self.assertEqual(feeder.reads.kind(), "kernel")
        # within 2 ms of the truth (TTFT counts from t_start, a few hundred microseconds after `sent`)
        self.assertLess(abs(result["ttft_s"] - true_ttft), 0.002, (result["ttft_s"], true_ttft))
        self.assertAlmostEqual(result["itl_s"][0], 0.1, delta=0.01)

    def test_loop_stamps_carry_the_loop_s_delay(self):
        # what the kernel's stamp spares: the same request stamped by the loop is late by the busy time
        result, true_ttft, feeder = self.measure(kernel_stamps=False)
        self.assertEqual(feeder.reads.kind(), "loop")
        self.assertGreater(result["ttft_s"] - true_ttft, 0.05, (result["ttft_s"], true_ttft))


class ClockBridgeTest(unittest.TestCase):
    def test_a_realtime_stamp_becomes_the_monotonic_time(self):
        bridge = stamped.ClockBridge()
        wall = time.time() - 0.25
        mono = time.monotonic() - 0.25
        payload = struct.pack("@ll", int(wall), int(round((wall % 1) * 1e9)))
        self.assertAlmostEqual(bridge.monotonic(payload), mono, delta=0.001)

    def test_a_stamp_is_never_in_the_future(self):
        bridge = stamped.ClockBridge()
        wall = time.time() + 5.0
        payload = struct.pack("@ll", int(wall), 0)
        self.assertLessEqual(bridge.monotonic(payload), time.monotonic())


if __name__ == "__main__":
    unittest.main()
