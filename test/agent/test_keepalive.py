"""Kept-alive connections: each stream's next request goes on the connection its last one used when the
server keeps it (HTTP/1.1, a framed body, no `Connection: close`), a new one when the server closed it
before answering, and none is reused where the server said close."""

import unittest
from typing import List

from .helpers import max_overlap  # noqa: F401  (helpers puts agent/ on sys.path)
from .test_load_async import StandInTestCase, run_point, specs
from .test_load_streams import (DONE, LAST_CHUNK, SSE_CHUNKED, FakeAgent, LoadTestCase, chunked, sse, text_chunk,
                                tokens)

from wattbench_agent import client

CLOSING_CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                   b"Connection: close\r\n\r\n")


class StandInKeepAliveTest(StandInTestCase):
    def test_each_stream_keeps_its_connection_for_its_next_requests(self):
        server = self.stand_in(gap_ms=2.0, ttft_ms=5.0)
        agent, counts, stop = run_point(server.base_url, specs(12, 5), concurrency=3)
        requests = agent.events.of_type("request")
        self.assertEqual(len(requests), 12)
        self.assertTrue(all(r["ok"] for r in requests), requests)
        truth = server.stats()
        self.assertEqual(truth["streams"], 12)
        # three streams, four requests each: three connections (GET /stats is a fourth, opened after)
        self.assertEqual(truth["connections"], 3 + 1)


class ServerClosesTest(LoadTestCase):
    def kept(self) -> List[int]:
        """Records each connection the agent keeps for a next request (the responses it had carried)."""
        kept = []  # type: List[int]
        original = client.Feeder.put_idle

        def put_idle(feeder, protocol):
            kept.append(protocol.responses)
            return original(feeder, protocol)

        client.Feeder.put_idle = put_idle
        self.addCleanup(setattr, client.Feeder, "put_idle", original)
        return kept

    def test_a_connection_the_server_closed_after_answering_is_replaced_not_failed(self):
        # the scripted server answers one request per connection, framed and without Connection: close, and
        # closes it 50 ms later, without reading what came meanwhile: the agent, keeping it, sends the next
        # request there at once and learns that it is closed only when no answer comes
        body = [SSE_CHUNKED, chunked(tokens(" a")), chunked(tokens(" b")),
                chunked(sse(text_chunk("", finish="stop"))), chunked(DONE), LAST_CHUNK, ("sleep", 0.05)]
        server = self.serve(body)
        kept = self.kept()
        agent, counts, stop = self.run_load(server, self.specs(5), concurrency=1)
        self.assertTrue(kept)  # the answers allowed it
        requests = agent.events.of_type("request")
        self.assertEqual([r["ok"] for r in requests], [True] * 5, requests)
        self.assertEqual([len(r["itl_s"]) for r in requests], [1] * 5)
        self.assertEqual(len(server.posts()), 5)  # each answered once: no request was sent twice
        self.assertEqual(agent.failures_checked, 0)  # no lost connection was reported

    def test_connection_close_is_never_reused(self):
        server = self.serve([CLOSING_CHUNKED, chunked(tokens(" a")), chunked(sse(text_chunk("", finish="stop"))),
                             chunked(DONE), LAST_CHUNK, ("sleep", 0.1)])
        kept = self.kept()
        agent, counts, stop = self.run_load(server, self.specs(3), agent=FakeAgent(), concurrency=1)
        requests = agent.events.of_type("request")
        self.assertTrue(all(r["ok"] for r in requests), requests)
        self.assertEqual(len(server.posts()), 3)
        self.assertEqual(kept, [])


if __name__ == "__main__":
    unittest.main()
