"""Kernel receive stamps (stamped.py): a token's arrival is when its bytes reached the host, so a loop that
was busy when they came does not make TTFT late; without them (asyncio's transport) it does, which is what
the test measures against. The clock bridge on its own."""

import asyncio
import math
import select
import socket
import struct
import threading
import time
import unittest
from typing import Any, Dict, List, Tuple

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


@unittest.skipUnless(stamped.DirectSelector.available(), "no epoll on this platform")
class DirectSelectorTest(unittest.TestCase):
    """The load loop's selector: asyncio's own sockets as a selector serves them, stamped sockets' handlers
    called from select() itself."""

    def pair(self) -> Tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        a.setblocking(False)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        return a, b

    def selector(self) -> stamped.DirectSelector:
        selector = stamped.DirectSelector()
        self.addCleanup(selector.close)
        return selector

    def test_a_direct_handler_gets_its_socket_s_events_from_select(self):
        selector = self.selector()
        a, b = self.pair()
        seen = []  # type: List[int]
        selector.add_direct(a.fileno(), seen.append)
        self.assertEqual(selector.select(0), [])
        self.assertEqual(seen, [])
        b.sendall(b"x")
        self.assertEqual(selector.select(1.0), [])  # nothing for asyncio: the handler had it
        self.assertEqual(len(seen), 1)
        self.assertTrue(seen[0] & select.EPOLLIN)

    def test_a_failing_handler_is_reported_and_the_others_still_run(self):
        selector = self.selector()
        errors = []  # type: List[BaseException]
        selector.on_error = errors.append
        called = []  # type: List[str]
        pairs = [self.pair() for _ in range(3)]

        def failing(event: int) -> None:
            called.append("failing")
            raise ValueError("a handler's bug")

        selector.add_direct(pairs[0][0].fileno(), lambda e: called.append("first"))
        selector.add_direct(pairs[1][0].fileno(), failing)
        selector.add_direct(pairs[2][0].fileno(), lambda e: called.append("last"))
        for _, b in pairs:
            b.sendall(b"x")
        time.sleep(0.05)
        selector.select(1.0)
        self.assertEqual(sorted(called), ["failing", "first", "last"])
        self.assertEqual([str(e) for e in errors], ["a handler's bug"])

    def test_without_an_error_handler_a_handler_s_exception_is_raised(self):
        selector = self.selector()
        a, b = self.pair()
        selector.add_direct(a.fileno(), lambda e: 1 / 0)
        b.sendall(b"x")
        with self.assertRaises(ZeroDivisionError):
            selector.select(1.0)

    def test_writes_are_watched_only_while_asked_for(self):
        selector = self.selector()
        a, _ = self.pair()
        seen = []  # type: List[int]
        selector.add_direct(a.fileno(), seen.append)
        selector.select(0)
        self.assertEqual(seen, [])  # writable, but nobody asked
        selector.modify_direct(a.fileno(), True)
        selector.select(0)
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0] & select.EPOLLOUT, select.EPOLLOUT)
        selector.modify_direct(a.fileno(), False)
        selector.select(0)
        self.assertEqual(len(seen), 1)

    def test_a_removed_socket_reaches_its_handler_no_more(self):
        selector = self.selector()
        a, b = self.pair()
        seen = []  # type: List[int]
        selector.add_direct(a.fileno(), seen.append)
        selector.remove_direct(a.fileno())
        selector.remove_direct(a.fileno())  # twice: nothing to do
        b.sendall(b"x")
        self.assertEqual(selector.select(0.05), [])
        self.assertEqual(seen, [])
        # the number is free again, for asyncio's own or another direct socket
        selector.add_direct(a.fileno(), seen.append)
        selector.select(1.0)
        self.assertEqual(len(seen), 1)

    def test_a_socket_is_either_direct_or_asyncio_s(self):
        selector = self.selector()
        a, _ = self.pair()
        selector.add_direct(a.fileno(), lambda e: None)
        with self.assertRaises(KeyError):
            selector.register(a, 1)
        c, _ = self.pair()
        selector.register(c, 1)
        with self.assertRaises(KeyError):
            selector.add_direct(c.fileno(), lambda e: None)

    def test_asyncio_s_own_sockets_work_on_the_loop(self):
        # a server and a client of asyncio's own streams, beside a direct socket that keeps getting data
        async def main() -> Tuple[bytes, int]:
            loop = asyncio.get_running_loop()
            direct = stamped.direct_selector(loop)
            self.assertIsNotNone(direct)
            a, b = self.pair()
            reads = []  # type: List[int]
            direct.add_direct(a.fileno(), lambda e: reads.append(len(a.recv(100))))
            self.addCleanup(direct.remove_direct, a.fileno())

            async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write((await reader.readline()).upper())
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            b.sendall(b"one")
            writer.write(b"hello\n")
            answer = await reader.readline()
            b.sendall(b"two")
            await asyncio.sleep(0.05)
            writer.close()
            server.close()
            await server.wait_closed()
            return answer, sum(reads)

        answer, direct_bytes = stamped.run_loop(main())
        self.assertEqual(answer, b"HELLO\n")
        self.assertEqual(direct_bytes, 6)

    def polls(self, fine: bool, timeout: float) -> Tuple[List[float], List[float]]:
        """What select(timeout) asks of epoll (its timeouts, in ms as Python rounds them: up) and of sleep."""
        selector = self.selector()
        selector.fine_timeouts = fine
        real = selector._selector
        asked = []  # type: List[float]
        slept = []  # type: List[float]

        class Epoll:
            def poll(self, timeout: float, maxevents: int) -> List[Tuple[int, int]]:
                asked.append(math.ceil(round(timeout * 1e6, 3) / 1e3) if timeout > 0 else timeout)
                return real.poll(0, maxevents)

            def close(self) -> None:
                real.close()

        selector._selector = Epoll()
        selector._sleep = slept.append
        selector.select(timeout)
        return asked, slept

    def test_a_timeout_waits_whole_milliseconds_in_epoll_and_with_fine_timeouts_no_more(self):
        # asyncio's epoll rounds 5.4 ms up to 6: a timer then fires up to 1 ms late
        self.assertEqual(self.polls(False, 0.0054), ([6], []))
        self.assertEqual(self.polls(False, 0.0004), ([1], []))
        # fine: the whole milliseconds, then (the loop asking again) the rest slept, and epoll only looked
        self.assertEqual(self.polls(True, 0.0054), ([5], []))
        self.assertEqual(self.polls(True, 0.005), ([5], []))
        self.assertEqual(self.polls(True, 0.0004), ([0], [0.0004]))
        self.assertEqual(self.polls(True, 0), ([0], []))
        self.assertEqual(self.polls(True, None), ([-1], []))

    def test_a_stamped_write_larger_than_the_socket_takes_arrives_whole(self):
        # the server reads only after a pause, so the write has to wait for room (EPOLLOUT) on the loop
        payload = bytes(range(256)) * (16 * 4096)  # 16 MiB: more than loopback's buffers hold
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        received = bytearray()

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                time.sleep(0.2)
                while len(received) < len(payload):
                    data = conn.recv(1 << 16)
                    if not data:
                        break
                    received.extend(data)
                conn.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        class Protocol(asyncio.Protocol):
            def __init__(self) -> None:
                self.buffer = bytearray(1 << 16)
                self.data = b""
                self.done = asyncio.get_running_loop().create_future()

            def get_buffer(self, hint: int) -> Any:
                return memoryview(self.buffer)

            def data_received_at(self, data: bytes, t: float) -> None:
                self.data += data
                if self.data == b"ok" and not self.done.done():
                    self.done.set_result(None)

            def eof_received(self) -> bool:
                return False

        async def main() -> None:
            loop = asyncio.get_running_loop()
            transport, protocol = await stamped.open_stamped(
                loop, Protocol, "127.0.0.1", listener.getsockname()[1], stamped.Resolver(),
                stamped.ClockBridge(), stamped.ReadCounts())
            transport.write(payload)
            self.assertTrue(transport._pending, "the socket took it all: nothing here waited for room")
            await asyncio.wait_for(protocol.done, 10)
            transport.close()

        stamped.run_loop(main())
        thread.join(5)
        self.assertEqual(len(received), len(payload))
        self.assertTrue(received == payload)


if __name__ == "__main__":
    unittest.main()
