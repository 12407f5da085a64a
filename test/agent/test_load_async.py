"""The asyncio load generator: the configured concurrency in flight at once, Poisson arrivals at the asked
rate, every sampling field in the body, arrival times against a server with known gaps, and a point that
says so when the client's own loop ran late."""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import unittest
from unittest import mock
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from .helpers import max_overlap  # (helpers puts agent/ on sys.path)
from .test_load_streams import (DONE, SSE_CHUNKED, SSE_UNTIL_CLOSE, FakeAgent, LoadTestCase, chunked, sse,
                                text_chunk, tokens, workload)

from wattbench_agent import client, stamped
from wattbench_agent.job import JobError, PointConfig, parse_job
from wattbench_agent.client import Endpoint
from wattbench_agent.load import LoadRunner, PointCounts
from wattbench_agent.prompts import RequestSpec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAND_IN = os.path.join(ROOT, "bench", "loadgen_server.py")


class StandIn:
    """bench/loadgen_server.py in a process of its own: streams `max_tokens` one-token chunks `gap_ms` apart
    after `ttft_ms`; /stats says what it really sent and received."""

    def __init__(self, gap_ms: float, ttft_ms: float, spread: bool = False) -> None:
        args = [sys.executable, STAND_IN, "--gap-ms", str(gap_ms), "--ttft-ms", str(ttft_ms)]
        self.process = subprocess.Popen(args + (["--spread"] if spread else []), stdout=subprocess.PIPE)
        line = self.process.stdout.readline().decode()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.base_url = "http://127.0.0.1:%d/v1" % self.port

    def stats(self) -> Dict[str, Any]:
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % self.port, timeout=10) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()


def run_point(base_url: str, specs: List[RequestSpec], agent: Optional[FakeAgent] = None, api: str = "chat",
              request_fields: Optional[Dict[str, Any]] = None,
              **changes: Any) -> Tuple[FakeAgent, PointCounts, Optional[str]]:
    agent = agent or FakeAgent()
    point = PointConfig("p", "p", None, 1, workload(**changes))
    counts = PointCounts()
    runner = LoadRunner(agent, Endpoint(base_url, api, "m", request_fields), point, 0, counts, None)
    stop = runner.run(specs, warmup=False, first_index=0)
    return agent, counts, stop


def specs(count: int, max_tokens: int = 16) -> List[RequestSpec]:
    return [RequestSpec("hello there", 2, max_tokens) for _ in range(count)]


class StandInTestCase(unittest.TestCase):
    def stand_in(self, gap_ms: float, ttft_ms: float, spread: bool = False) -> StandIn:
        server = StandIn(gap_ms, ttft_ms, spread)
        self.addCleanup(server.close)
        return server


class ConcurrencyTest(StandInTestCase):
    def test_two_hundred_streams_are_all_in_flight_at_once(self):
        server = self.stand_in(gap_ms=20, ttft_ms=20)
        # each stream lasts about 20 + 15 * 20 ms: long enough for all 200 to connect while the first run
        agent, counts, stop = run_point(server.base_url, specs(200, 15), concurrency=200)
        self.assertIsNone(stop)
        requests = agent.events.of_type("request")
        self.assertEqual(len(requests), 200)
        self.assertTrue(all(r["ok"] and r["output_tokens"] == 15 for r in requests), requests[:3])
        truth = server.stats()
        self.assertEqual(truth["inflight_max"], 200)  # the server saw all of them at once
        self.assertEqual(max_overlap(requests), 200)
        self.assertEqual(counts.inflight_max, 200)
        end = counts.end_fields()
        self.assertEqual(end["inflight_max"], 200)
        self.assertGreater(end["inflight_mean"], 150)
        self.assertLessEqual(end["inflight_mean"], 200)
        self.assertIn("client_lag_ms", end)
        self.assertIn("client_behind", end)


class RateTest(StandInTestCase):
    def test_poisson_arrivals_reach_the_asked_rate(self):
        server = self.stand_in(gap_ms=1, ttft_ms=1)
        rate, count = 200.0, 400
        agent, counts, stop = run_point(server.base_url, specs(count, 2), concurrency=None, request_rate=rate)
        self.assertIsNone(stop)
        starts = sorted(r["t_start"] for r in agent.events.of_type("request"))
        self.assertEqual(len(starts), count)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        # n arrivals of a Poisson process: the mean gap is 1/rate with a relative sd of 1/sqrt(n) (5% here);
        # 4 sd is 20%. Exponential gaps have a coefficient of variation of 1.
        mean_gap = statistics.mean(gaps)
        self.assertAlmostEqual(mean_gap * rate, 1.0, delta=0.2)
        self.assertAlmostEqual(statistics.pstdev(gaps) / mean_gap, 1.0, delta=0.25)
        achieved = counts.end_fields()["request_rate_achieved"]
        self.assertAlmostEqual(achieved, rate, delta=0.2 * rate)
        self.assertAlmostEqual(achieved, (count - 1) / (starts[-1] - starts[0]), delta=0.1 * rate)


class BodyTest(StandInTestCase):
    def bodies(self, request_fields: Optional[Dict[str, Any]] = None, **changes: Any) -> List[Dict[str, Any]]:
        server = self.stand_in(gap_ms=1, ttft_ms=1)
        run_point(server.base_url, specs(1, 2), request_fields=request_fields, **changes)
        return server.stats()["bodies"]

    def test_temperature_and_top_p_are_sent(self):
        body = self.bodies(temperature=0.7, top_p=0.9)[0]
        self.assertEqual((body["temperature"], body["top_p"]), (0.7, 0.9))
        self.assertEqual(body["messages"], [{"role": "user", "content": "hello there"}])
        self.assertEqual(body["max_tokens"], 2)
        self.assertNotIn("top_p", self.bodies(temperature=0.0)[0])

    def test_request_fields_are_merged_into_the_body(self):
        fields = {"ignore_eos": True, "min_tokens": 2, "stream_options": {"continuous_usage_stats": True},
                  "max_tokens": 999, "stream": False}
        body = self.bodies(request_fields=fields, ignore_eos=False)[0]
        self.assertIs(body["ignore_eos"], True)
        self.assertEqual(body["min_tokens"], 2)
        self.assertEqual(body["stream_options"], {"continuous_usage_stats": True, "include_usage": True})
        self.assertEqual((body["max_tokens"], body["stream"]), (2, True))  # the job's own fields stay

    def test_without_request_fields_ignore_eos_comes_from_the_workload(self):
        self.assertIs(self.bodies(ignore_eos=True)[0]["ignore_eos"], True)
        self.assertNotIn("ignore_eos", self.bodies(ignore_eos=False)[0])
        # with request_fields, the preset decides (an engine that has no ignore_eos gets none)
        self.assertNotIn("ignore_eos", self.bodies(request_fields={"min_tokens": 1}, ignore_eos=True)[0])

    def test_the_job_carries_request_fields(self):
        job = {"v": 1, "run_id": "r", "server": {"base_url": "http://127.0.0.1:1/v1", "model": "m",
                                                   "request_fields": {"ignore_eos": True}},
               "points": [{"id": "p", "workload": {"dataset": {"kind": "synthetic", "input_tokens": 4,
                                                               "output_tokens": 4},
                                                   "num_prompts": 1, "concurrency": 1, "top_p": 0.5}}]}
        parsed = parse_job(job, "/tmp/job.json")
        self.assertEqual(parsed.server.request_fields, {"ignore_eos": True})
        self.assertEqual(parsed.points[0].workload.top_p, 0.5)
        job["server"]["request_fields"] = ["ignore_eos"]
        with self.assertRaises(JobError) as caught:
            parse_job(job, "/tmp/job.json")
        self.assertIn("server.request_fields", str(caught.exception))


class ArrivalTimingTest(StandInTestCase, LoadTestCase):
    def test_inter_token_latency_and_ttft_match_the_servers_sends(self):
        gap_ms, ttft_ms = 20.0, 50.0
        server = self.stand_in(gap_ms=gap_ms, ttft_ms=ttft_ms)
        agent, counts, stop = run_point(server.base_url, specs(8, 25), concurrency=4)
        requests = agent.events.of_type("request")
        self.assertTrue(all(r["ok"] for r in requests))
        itls = sorted(g for r in requests for g in r["itl_s"])
        self.assertEqual(len(itls), 8 * 24)
        truth = server.stats()
        # the median gap as sent (about gap_ms) and as measured agree within 0.5 ms; the measured TTFT is
        # the server's plus connecting and sending the request (a few ms on a busy machine), never less
        self.assertAlmostEqual(truth["gap_ms"]["p50"], gap_ms, delta=1.0)
        self.assertAlmostEqual(statistics.median(itls) * 1000, truth["gap_ms"]["p50"], delta=0.5)
        ttft = statistics.median(r["ttft_s"] for r in requests) * 1000
        self.assertGreater(ttft, truth["ttft_ms"]["p50"] - 0.5)
        self.assertLess(ttft, truth["ttft_ms"]["p50"] + 10.0)
        # the role chunk (empty content) that came at once is no first token
        self.assertGreater(ttft, ttft_ms - 1)

    def test_chunks_read_together_are_stamped_when_read_not_when_parsed(self):
        # five tokens in one write; parsing each data line takes 10 ms. Stamped as the bytes are read, all
        # five arrived at once (inter-token 0); stamped after parsing they would look 10 ms apart.
        server = self.serve([SSE_UNTIL_CLOSE, tokens(" a"), ("sleep", 0.05), tokens(" b", " c", " d", " e", " f"),
                             sse(text_chunk("", finish="stop")), DONE])
        original = client.StreamParser.feed

        def slow_feed(parser, raw, *rest):
            if raw.startswith(b"data: {"):
                time.sleep(0.01)
            return original(parser, raw, *rest)

        client.StreamParser.feed = slow_feed
        self.addCleanup(setattr, client.StreamParser, "feed", original)
        agent, counts, stop = self.run_load(server, self.specs(1), concurrency=1)
        request = agent.events.of_type("request")[0]
        self.assertTrue(request["ok"], request)
        self.assertEqual(len(request["itl_s"]), 5)
        self.assertGreater(request["itl_s"][0], 0.045)
        self.assertEqual(request["itl_s"][1:], [0.0] * 4)


class ClientLagTest(LoadTestCase):
    """A loop blocked 120 ms on its first token's chunk: with loop stamps every later arrival carries the delay,
    so the point is flagged; with kernel stamps it is flagged only when the delay put two tokens of a stream
    in one read (their gap then is the read's, 0), not when the stamps came out right."""

    def block_first_parse(self) -> None:
        blocked = []

        def blocking(original):
            def parse(parser, *args):
                if not blocked:
                    blocked.append(True)
                    time.sleep(0.12)  # the loop thread is stuck: every timer and read waits
                return original(parser, *args)
            return parse

        for name in ("feed", "feed_event"):
            original = getattr(client.StreamParser, name)
            setattr(client.StreamParser, name, blocking(original))
            self.addCleanup(setattr, client.StreamParser, name, original)

    def spaced_script(self) -> List[Any]:
        # every write well apart and longer apart than the block: no two tokens can share a read
        return [SSE_UNTIL_CLOSE, tokens(" a"), ("sleep", 0.3), tokens(" b"), ("sleep", 0.05),
                sse(text_chunk("", finish="stop")), ("sleep", 0.05), DONE]

    def warnings(self, agent: FakeAgent) -> List[str]:
        return [e["msg"] for e in agent.events.of_type("log") if "fell behind" in e["msg"]]

    def test_with_loop_stamps_a_blocked_loop_flags_the_point(self):
        self.block_first_parse()
        server = self.serve(self.spaced_script())
        with mock.patch.object(client, "kernel_stamps_possible", lambda: False):
            agent, counts, stop = self.run_load(server, self.specs(1), concurrency=1)
        end = counts.end_fields()
        self.assertEqual(end["arrival_stamps"], "loop")
        self.assertIs(end["client_behind"], True)
        self.assertGreaterEqual(end["client_lag_ms"]["max"], 100)
        self.assertLessEqual(end["client_lag_ms"]["p50"], end["client_lag_ms"]["p99"])
        warnings = self.warnings(agent)
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("include the client's own delay", warnings[0])

    @unittest.skipUnless(stamped.kernel_stamps_possible(), "needs the kernel's receive stamps (Linux)")
    def test_with_kernel_stamps_a_late_loop_that_merged_no_reads_is_not_flagged(self):
        self.block_first_parse()
        server = self.serve(self.spaced_script())
        agent, counts, stop = self.run_load(server, self.specs(1), concurrency=1)
        end = counts.end_fields()
        request = agent.events.of_type("request")[0]
        self.assertEqual(end["arrival_stamps"], "kernel")
        self.assertGreaterEqual(end["client_lag_ms"]["max"], 100)  # the lateness is still reported ...
        self.assertIs(end["client_behind"], False)  # ... but spoilt nothing: the server's 0.3 s gap is measured
        self.assertAlmostEqual(request["itl_s"][0], 0.3, delta=0.03)
        self.assertEqual(self.warnings(agent), [])

    @unittest.skipUnless(stamped.kernel_stamps_possible(), "needs the kernel's receive stamps (Linux)")
    def test_with_kernel_stamps_a_late_loop_that_read_tokens_together_flags_the_point(self):
        self.block_first_parse()
        # four tokens 20 ms apart while the loop is blocked: read at once when it wakes
        steps = [SSE_UNTIL_CLOSE, tokens(" a")]
        for word in (" b", " c", " d", " e"):
            steps += [("sleep", 0.02), tokens(word)]
        server = self.serve(steps + [("sleep", 0.2), sse(text_chunk("", finish="stop")), ("sleep", 0.05), DONE])
        agent, counts, stop = self.run_load(server, self.specs(1), concurrency=1)
        end = counts.end_fields()
        request = agent.events.of_type("request")[0]
        zero_gaps = sum(1 for gap in request["itl_s"] if gap == 0.0)
        self.assertGreaterEqual(zero_gaps, 1, request["itl_s"])  # what the flag is for
        self.assertGreater(end["arrivals_shared_read"], 0.002)
        self.assertIs(end["client_behind"], True)
        warnings = self.warnings(agent)
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("read together with the one before", warnings[0])


class FirstTokenSharedTest(LoadTestCase):
    @unittest.skipUnless(stamped.kernel_stamps_possible(), "needs the kernel's receive stamps (Linux)")
    def test_a_first_token_read_with_the_second_flags_the_point(self):
        # the loop is stuck on the response head while the first two tokens arrive: one read takes both, the
        # first stamped as the second (TTFT late by their 20 ms gap), though only 1 of 20 tokens shares a read
        original = client.StreamProtocol._read_head
        blocked = []

        def slow_head(protocol, data):
            if not blocked:
                blocked.append(True)
                time.sleep(0.15)
            return original(protocol, data)

        client.StreamProtocol._read_head = slow_head
        self.addCleanup(setattr, client.StreamProtocol, "_read_head", original)
        steps = [SSE_UNTIL_CLOSE, ("sleep", 0.1), tokens(" a"), ("sleep", 0.02), tokens(" b"), ("sleep", 0.18)]
        for k in range(18):
            steps += [tokens(" t%d" % k), ("sleep", 0.02)]
        server = self.serve(steps + [sse(text_chunk("", finish="stop")), DONE])
        agent, counts, stop = self.run_load(server, self.specs(1), concurrency=1)
        end = counts.end_fields()
        request = agent.events.of_type("request")[0]
        self.assertEqual(request["itl_s"][0], 0.0)  # the second token's gap: the read's
        self.assertEqual(end["first_tokens_shared_read"], 1.0)
        self.assertLess(end["arrivals_shared_read"], 0.1)
        self.assertIs(end["client_behind"], True)
        warnings = [e["msg"] for e in agent.events.of_type("log") if "fell behind" in e["msg"]]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("100.0% of its requests' first tokens with the second", warnings[0])


class BehindRuleTest(unittest.TestCase):
    """summarize_lag's rule on counts given outright: with kernel stamps, a stall and merged reads flag a
    point, either alone does not; with loop stamps, lateness alone does."""

    def behind(self, stamps: str, lags_ms: List[float], arrivals: int = 10000, shared: int = 0,
               first_arrivals: int = 100, first_shared: int = 0) -> Optional[bool]:
        counts = PointCounts(arrival_stamps=stamps, arrivals=arrivals, shared_reads=shared,
                             first_arrivals=first_arrivals, first_shared=first_shared)
        point = PointConfig("p", "p", None, 1, workload())
        runner = LoadRunner(FakeAgent(), Endpoint("http://127.0.0.1:1/v1", "chat", "m"), point, 0, counts, None)
        runner.summarize_lag(lags_ms)
        return counts.client_behind

    def test_kernel_stamps(self):
        stall = [0.5] * 99 + [20.0]
        self.assertIs(self.behind("kernel", stall), False)  # a stall that merged nothing
        self.assertIs(self.behind("kernel", stall, shared=51), True)  # 0.51% of tokens
        self.assertIs(self.behind("kernel", stall, shared=50), False)  # 0.5%: at the limit, not past it
        self.assertIs(self.behind("kernel", stall, first_shared=2), True)  # 2% of first tokens, 0% of tokens
        self.assertIs(self.behind("kernel", stall, first_shared=1), False)  # 1%: at the limit
        # merged reads with no stall longer than a 200 tokens/s gap: the engine sent them together
        self.assertIs(self.behind("kernel", [0.5] * 99 + [4.0], shared=500, first_shared=50), False)

    def test_loop_stamps(self):
        self.assertIs(self.behind("loop", [0.5] * 99 + [20.0]), False)
        self.assertIs(self.behind("loop", [0.5] * 99 + [60.0]), True)  # max past 50 ms
        self.assertIs(self.behind("loop", [6.0] * 100), True)  # p99 past 5 ms


class StreamEndLoadTest(LoadTestCase):
    def test_a_finished_stream_closed_without_its_last_chunk_is_no_lost_connection(self):
        # a finish_reason and usage, then the server closes without [DONE] and without the chunked body's
        # last chunk: the response is complete, so no probe of the server per request
        usage = {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
        server = self.serve([SSE_CHUNKED, chunked(tokens(" a")),
                             chunked(sse(text_chunk(" b", finish="length", usage=usage))), ("close",)])
        agent, counts, stop = self.run_load(server, self.specs(6))
        requests = agent.events.of_type("request")
        self.assertTrue(all(r["ok"] and r["output_tokens"] == 2 for r in requests), requests)
        self.assertEqual(agent.failures_checked, 0)

    def test_a_stream_cut_before_its_finish_probes_the_server(self):
        server = self.serve([SSE_CHUNKED, chunked(tokens(" a")), ("close",)])
        agent, counts, stop = self.run_load(server, self.specs(3), concurrency=1)
        self.assertEqual(counts.errors, 3)
        self.assertEqual(agent.failures_checked, 3)

    def test_a_cancel_aborts_every_stream_in_flight(self):
        server = self.serve([SSE_CHUNKED, chunked(tokens(" a")), ("sleep", 5), chunked(DONE)])
        agent = FakeAgent()
        threading.Timer(0.4, agent.cancel.set).start()
        started = time.monotonic()
        agent, counts, stop = self.run_load(server, self.specs(60), agent=agent, concurrency=30)
        self.assertEqual(stop, "cancelled")
        self.assertLess(time.monotonic() - started, 2.5)
        requests = agent.events.of_type("request")
        self.assertEqual(len(requests), 30)  # the 30 in flight; the rest were never sent
        self.assertTrue(all(r["error"].startswith("aborted (cancelled)") for r in requests), requests[:2])
        self.assertEqual(agent.failures_checked, 0)


if __name__ == "__main__":
    unittest.main()
