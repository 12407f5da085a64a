"""The load generator against exact byte streams: a small server on 127.0.0.1 replays responses written
here byte for byte (chunked or closed by EOF, cut short, reset), the way vLLM, SGLang, TGI and llama.cpp
end, break and report errors in their streams."""

import json
import os
import socket
import socketserver
import struct
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .helpers import AgentTestCase, http_point, max_overlap, serve_on_loopback  # noqa: F401  (helpers puts agent/ on sys.path)

from wattbench_agent import client, load
from wattbench_agent.job import PointConfig, WorkloadConfig
from wattbench_agent.client import Endpoint, stream_request
from wattbench_agent.load import LoadRunner, PointCounts
from wattbench_agent.prompts import RequestSpec


# --- the scripted server ---

Step = Union[bytes, Tuple[Any, ...]]  # bytes are sent as they are; ("sleep", s), ("reset",), ("close",)


class ScriptedServer:
    """Answers every POST with a script: a list of steps, chosen by `script(n, request)` (n counts POSTs from
    0; `request` is {"method", "path", "headers", "body"} with the body parsed as JSON). GET /v1/models and
    /health answer 200, so the agent's readiness probe passes. Every request is kept in `requests`."""

    def __init__(self, script: Callable[[int, Dict[str, Any]], List[Step]]) -> None:
        self.script = script
        self.requests = []  # type: List[Dict[str, Any]]
        self._lock = threading.Lock()
        self.server, self.port = serve_on_loopback(self._handle)
        self.base_url = "http://127.0.0.1:%d/v1" % self.port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posts(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["method"] == "POST"]

    def _handle(self, handler: socketserver.StreamRequestHandler) -> None:
        line = handler.rfile.readline().decode("latin-1").strip()
        if not line:
            return
        method, path = line.split(" ")[:2]
        headers = {}
        while True:
            header = handler.rfile.readline().decode("latin-1").strip()
            if not header:
                break
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = handler.rfile.read(int(headers.get("content-length") or 0))
        request = {"method": method, "path": path, "headers": headers,
                   "body": json.loads(raw) if raw else None, "t": time.time()}
        with self._lock:
            n = len([r for r in self.requests if r["method"] == "POST"])
            self.requests.append(request)
        if method == "GET":
            body = b'{"object": "list", "data": [{"id": "m", "object": "model"}]}'
            steps = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body)]
        else:
            steps = self.script(n, request)
        sock = handler.connection
        try:
            for step in steps:
                if isinstance(step, bytes):
                    sock.sendall(step)
                elif step[0] == "sleep":
                    time.sleep(step[1])
                elif step[0] == "reset":
                    # SO_LINGER 0: close() sends a TCP RST instead of a FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
                elif step[0] == "close":
                    break
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


# --- byte builders ---

SSE_CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
SSE_UNTIL_CLOSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def chunked(data: bytes) -> bytes:
    """One piece of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(obj: Any, prefix: bytes = b"data: ", end: bytes = b"\n\n") -> bytes:
    return prefix + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + end


def text_chunk(text: str, finish: Optional[Any] = None, usage: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """A /v1/completions stream chunk."""
    chunk = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}  # type: Dict[str, Any]
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def usage_chunk(prompt: int, completion: int) -> Dict[str, Any]:
    return {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


DONE = b"data: [DONE]\n\n"


def tokens(*words: str) -> bytes:
    return b"".join(sse(text_chunk(w)) for w in words)


def http_error(status: int, reason: str, body: bytes, headers: Tuple[str, ...] = ()) -> List[Step]:
    head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
        status, reason, len(body), "".join(h + "\r\n" for h in headers))
    return [head.encode() + body]


# --- the agent side ---

def workload(**changes: Any) -> WorkloadConfig:
    fields = dict(kind="http", dataset=None, num_prompts=1, max_tokens=16, concurrency=1, request_rate=None,
                  warmup_requests=0, temperature=0.0, ignore_eos=False, time_limit_s=None, seed=1,
                  command=None)  # type: Dict[str, Any]
    fields.update(changes)
    return WorkloadConfig(**fields)


SPEC = RequestSpec("hello there", 2, 16)


class RecordingEvents:
    def __init__(self) -> None:
        self.events = []  # type: List[Dict[str, Any]]
        self._lock = threading.Lock()

    def emit(self, event_type: str, **fields: Any) -> Dict[str, Any]:
        event = dict(fields, type=event_type, t=time.time())
        with self._lock:
            self.events.append(event)
        return event

    def of_type(self, event_type: str) -> List[Dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["type"] == event_type]


class FakeAgent:
    """What LoadRunner uses of run.AgentRun."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.events = RecordingEvents()
        self.failures_checked = 0
        self.diag = self

    def server_dead(self) -> bool:
        return False

    def check_server_after_failure(self) -> None:
        self.failures_checked += 1

    def write(self, message: str) -> None:  # DiagLog.write
        pass


class StreamTestCase(unittest.TestCase):
    def serve(self, script: Union[List[Step], Callable[[int, Dict[str, Any]], List[Step]]]) -> ScriptedServer:
        server = ScriptedServer(script if callable(script) else (lambda n, request: script))
        self.addCleanup(server.close)
        return server

    def request(self, steps: List[Step], api: str = "completions", **workload_changes: Any) -> Dict[str, Any]:
        server = self.serve(steps)
        self.server = server
        return stream_request(Endpoint(server.base_url, api, "m"), SPEC, workload(**workload_changes),
                              lambda sock: None)

    def assert_ok(self, result: Dict[str, Any], output_tokens: int) -> None:
        self.assertIsNone(result["error"])
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["output_tokens"], output_tokens, result)

    def assert_failed(self, result: Dict[str, Any], *message_parts: str) -> None:
        self.assertFalse(result["ok"], result)
        for part in message_parts:
            self.assertIn(part, result["error"] or "")


class StreamEndTest(StreamTestCase):
    """How a stream ends decides success: [DONE], or EOF after a finish_reason; anything else failed."""

    def test_eof_after_finish_reason_and_usage_without_done_is_a_success(self):
        # TGI before 2.2 ends its OpenAI stream with finish_reason and usage and no [DONE]
        result = self.request([SSE_CHUNKED, chunked(tokens(" a", " b")),
                               chunked(sse(text_chunk(" c", finish="length",
                                                      usage={"prompt_tokens": 2, "completion_tokens": 3,
                                                             "total_tokens": 5}))),
                               LAST_CHUNK])
        self.assert_ok(result, 3)
        self.assertEqual(result["prompt_tokens"], 2)
        self.assertEqual(len(result["itl_s"]), 2)

    def test_eof_after_finish_reason_without_usage_is_a_success(self):
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a", " b"), sse(text_chunk("", finish="stop"))])
        self.assert_ok(result, 2)

    def test_eof_before_any_finish_reason_is_a_failure(self):
        result = self.request([SSE_CHUNKED, chunked(tokens(" a", " b")), LAST_CHUNK])
        self.assert_failed(result, "the stream ended before the response finished")
        self.assertEqual(result["output_tokens"], 2)  # what did arrive is still counted
        self.assertTrue(result["connection_lost"])

    def test_connection_reset_mid_stream_is_a_failure(self):
        result = self.request([SSE_CHUNKED, chunked(tokens(" a")), ("sleep", 0.05), ("reset",)])
        self.assertFalse(result["ok"])
        self.assertTrue(result["connection_lost"])
        self.assertEqual(result["output_tokens"], 1)

    def test_chunked_body_cut_inside_a_chunk_is_a_failure(self):
        piece = sse(text_chunk(" a", finish="stop"))
        result = self.request([SSE_CHUNKED, b"%x\r\n" % (len(piece) + 50), piece])
        self.assertFalse(result["ok"])
        self.assertTrue(result["connection_lost"])

    def test_done_after_finish_reason_and_usage(self):
        # vLLM and SGLang: the finish chunk, a usage chunk with no choices, then [DONE]
        result = self.request([SSE_CHUNKED, chunked(tokens(" a", " b")),
                               chunked(sse(text_chunk("", finish="length"))),
                               chunked(sse(usage_chunk(2, 2))), chunked(DONE), LAST_CHUNK])
        self.assert_ok(result, 2)


class SSEParsingTest(StreamTestCase):
    """Server-sent events as the spec writes them, not only as vLLM does."""

    def test_data_without_space_crlf_comments_and_other_fields(self):
        body = (b": keep-alive\r\n\r\n"
                b"id: 1\r\nretry: 1000\r\n" + sse(text_chunk(" a"), prefix=b"data:", end=b"\r\n\r\n") +
                b":ping\r\n\r\n" +
                sse(text_chunk(" b", finish="stop"), prefix=b"data:", end=b"\r\n\r\n") +
                b"data:[DONE]\r\n\r\n")
        result = self.request([SSE_UNTIL_CLOSE, body])
        self.assert_ok(result, 2)

    def test_an_event_split_across_writes(self):
        first = sse(text_chunk(" a"))
        result = self.request([SSE_UNTIL_CLOSE, first[:17], ("sleep", 0.05), first[17:],
                               sse(text_chunk(" b", finish="stop")), DONE])
        self.assert_ok(result, 2)

    def test_data_spread_over_several_lines(self):
        # one event's data may come in several data: lines, joined by newlines (the SSE spec)
        chunk = json.dumps(text_chunk(" a", finish="stop"), indent=1).encode()
        body = b"".join(b"data: " + line + b"\n" for line in chunk.split(b"\n")) + b"\n" + DONE
        result = self.request([SSE_UNTIL_CLOSE, body])
        self.assert_ok(result, 1)

    def test_text_that_is_not_json_fails_with_a_clear_message(self):
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a"), b"data: {oops\n\n", DONE])
        self.assert_failed(result, "not JSON", "{oops")


class StreamErrorTest(StreamTestCase):
    """An error reported inside a 200 stream is a failure with the engine's own message."""

    def test_error_object_in_the_stream(self):
        # vLLM: data: {"error": {"message", "type", "code"}} (then [DONE])
        error = {"error": {"object": "error", "message": "CUDA out of memory. Tried to allocate 2.00 GiB",
                           "type": "InternalServerError", "param": None, "code": 500}}
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a"), sse(error), DONE])
        self.assert_failed(result, "CUDA out of memory")

    def test_error_string_in_the_stream(self):
        # TGI: data: {"error": "...", "error_type": "..."}
        error = {"error": "Request failed during generation: Server error: out of memory",
                 "error_type": "generation"}
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a"), sse(error)])
        self.assert_failed(result, "Request failed during generation")

    def test_event_error(self):
        body = tokens(" a") + b"event: error\ndata: {\"message\": \"engine overloaded, request dropped\"}\n\n" + DONE
        result = self.request([SSE_UNTIL_CLOSE, body])
        self.assert_failed(result, "engine overloaded, request dropped")

    def test_llama_cpp_error_field(self):
        # llama.cpp's server sends a streaming error as an `error:` field, not `data:`
        body = (b'error: {"code": 400, "message": "the request exceeds the available context size, try '
                b'increasing it", "type": "exceed_context_size_error"}\n\n')
        result = self.request([SSE_UNTIL_CLOSE, body])
        self.assert_failed(result, "exceeds the available context size")

    def test_finish_reason_abort(self):
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish="abort")), DONE])
        self.assert_failed(result, "abort")
        self.assertEqual(result["output_tokens"], 1)

    def test_finish_reason_error(self):
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish="error")), DONE])
        self.assert_failed(result, "finish_reason", "error")

    def test_finish_reason_abort_as_an_object_with_a_message(self):
        # SGLang's own finish reason is an object, e.g. {"type": "abort", "message": ...}
        finish = {"type": "abort", "message": "The request was aborted by the scheduler"}
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish=finish)), DONE])
        self.assert_failed(result, "aborted by the scheduler")


class LoadTestCase(StreamTestCase):
    def run_load(self, server: ScriptedServer, specs: List[RequestSpec], agent: Optional[FakeAgent] = None,
                 warmup: bool = False, **workload_changes: Any) -> Tuple[FakeAgent, PointCounts, Optional[str]]:
        agent = agent or FakeAgent()
        changes = dict(concurrency=2)  # type: Dict[str, Any]
        changes.update(workload_changes)
        point = PointConfig("p", "p", None, 1, workload(**changes))
        counts = PointCounts()
        limit = point.workload.time_limit_s
        runner = LoadRunner(agent, Endpoint(server.base_url, "completions", "m"), point, 0, counts,
                            time.monotonic() + limit if limit else None)
        stop = runner.run(specs, warmup=warmup, first_index=0)
        return agent, counts, stop

    @staticmethod
    def specs(count: int, prompt: str = "hello there") -> List[RequestSpec]:
        return [RequestSpec(prompt, 2, 16) for _ in range(count)]


SLOW_STREAM = [SSE_CHUNKED, chunked(tokens(" a")), ("sleep", 0.25), chunked(tokens(" b")),
               chunked(sse(text_chunk("", finish="stop"))), chunked(DONE), LAST_CHUNK]


class NonObjectDataTest(LoadTestCase):
    """`data: null` (or any JSON that is not an object) is ignored with a note; it never kills a sender."""

    def test_data_that_is_not_an_object_is_ignored(self):
        for value in (b"null", b"42", b'"text"', b"[1, 2]", b"true"):
            with self.subTest(value=value):
                result = self.request([SSE_UNTIL_CLOSE, tokens(" a"), sse(value), tokens(" b"),
                                       sse(text_chunk("", finish="stop")), DONE])
                self.assert_ok(result, 2)

    def test_a_point_of_streams_with_data_null_loses_no_request_and_says_so_once(self):
        server = self.serve([SSE_UNTIL_CLOSE, tokens(" a"), b"data: null\n\n", ("sleep", 0.05),
                             tokens(" b"), sse(text_chunk("", finish="stop")), DONE])
        agent, counts, stop = self.run_load(server, self.specs(6))
        self.assertIsNone(stop)
        requests = agent.events.of_type("request")
        self.assertEqual(sorted(r["i"] for r in requests), list(range(6)))
        self.assertTrue(all(r["ok"] for r in requests), requests)
        self.assertEqual((counts.requests, counts.errors), (6, 0))
        notes = [e for e in agent.events.of_type("log") if "not a JSON object" in e["msg"]]
        self.assertEqual(len(notes), 1, agent.events.of_type("log"))
        self.assertEqual(notes[0]["level"], "warn")
        self.assertIn("null", notes[0]["msg"])


class SharedReadTest(LoadTestCase):
    """Token chunks that came in one read share its stamp: the point says what share of its tokens did."""

    def test_chunks_read_together_are_counted(self):
        # two token chunks in one write (one read), then one after a pause: 1 of 3 arrivals shared a read
        server = self.serve([SSE_UNTIL_CLOSE, tokens(" a", " b"), ("sleep", 0.05), tokens(" c"),
                             sse(text_chunk("", finish="stop")), DONE])
        agent, counts, stop = self.run_load(server, self.specs(2), concurrency=1)
        self.assertIsNone(stop)
        requests = agent.events.of_type("request")
        self.assertTrue(all(r["itl_s"][0] == 0.0 and r["itl_s"][1] > 0.04 for r in requests), requests)
        self.assertEqual((counts.arrivals, counts.shared_reads), (6, 2))
        self.assertEqual(counts.end_fields()["arrivals_shared_read"], round(2 / 6, 4))

    def test_chunks_read_apart_share_nothing(self):
        server = self.serve([SSE_UNTIL_CLOSE, tokens(" a"), ("sleep", 0.03), tokens(" b"),
                             sse(text_chunk("", finish="stop")), DONE])
        agent, counts, stop = self.run_load(server, self.specs(2), concurrency=1)
        self.assertEqual(counts.end_fields()["arrivals_shared_read"], 0.0)


class WorkerFailureTest(LoadTestCase):
    """A request that raises inside the agent is a failed request, reported; its sender goes on, and a
    sender that dies all the same is reported and replaced: the concurrency never drops silently."""

    def patch_stream_request(self, fail: Callable[[RequestSpec], None]) -> None:
        original = load.stream_request_async

        async def patched(endpoint, spec, workload, feeder, tracker=None, **options):
            fail(spec)
            return await original(endpoint, spec, workload, feeder, tracker, **options)

        load.stream_request_async = patched
        self.addCleanup(setattr, load, "stream_request_async", original)

    def test_a_request_that_raises_is_a_failed_request_and_the_sender_goes_on(self):
        def fail(spec):
            if spec.prompt == "boom":
                raise RuntimeError("something inside the agent broke")

        self.patch_stream_request(fail)
        server = self.serve(SLOW_STREAM)
        specs = self.specs(1, "boom") + self.specs(6)
        agent, counts, stop = self.run_load(server, specs)
        self.assertIsNone(stop)
        requests = {r["i"]: r for r in agent.events.of_type("request")}
        self.assertEqual(sorted(requests), list(range(7)))
        self.assertFalse(requests[0]["ok"])
        self.assertIn("internal error", requests[0]["error"])
        self.assertIn("something inside the agent broke", requests[0]["error"])
        self.assertEqual((counts.requests, counts.errors), (7, 1))
        errors = agent.events.of_type("error")
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual((errors[0]["where"], errors[0]["fatal"], errors[0]["point"]), ("load", False, "p"))
        self.assertIn("RuntimeError", errors[0]["detail"])
        # both senders kept sending: the six good requests ran two at a time
        self.assertEqual(max_overlap([requests[i] for i in range(1, 7)]), 2)

    def test_an_event_that_cannot_be_written_is_reported_and_the_senders_go_on(self):
        server = self.serve(SLOW_STREAM)
        agent = FakeAgent()
        emit = agent.events.emit
        failures = [OSError("No space left on device")] * 2

        def flaky_emit(event_type, **fields):
            # the first request's event cannot be written, nor the failure that replaces it
            if event_type == "request" and fields.get("i") == 0 and failures:
                raise failures.pop()
            return emit(event_type, **fields)

        agent.events.emit = flaky_emit
        agent, counts, stop = self.run_load(server, self.specs(7), agent=agent)
        self.assertIsNone(stop)
        requests = agent.events.of_type("request")
        self.assertEqual(len(requests), 6)
        errors = agent.events.of_type("error")
        self.assertTrue(errors, "the dead sender was not reported")
        self.assertTrue(any("No space left on device" in e["message"] and e["where"] == "load" for e in errors),
                        errors)
        self.assertEqual(counts.requests, 7)  # the request whose event was lost is counted, as failed
        self.assertEqual(counts.errors, 1)
        self.assertEqual(max_overlap(requests[-4:]), 2)


class TokenCountTest(LoadTestCase):
    """Output tokens come from the server's usage report when it sends one; otherwise they are the count
    of chunks that carried text, and every request and point says which."""

    def test_usage_is_asked_for_on_both_apis(self):
        for api in ("completions", "chat"):
            with self.subTest(api=api):
                self.request([SSE_UNTIL_CLOSE, sse(text_chunk(" a", finish="stop")), DONE], api=api)
                body = self.server.posts()[0]["body"]
                self.assertEqual(body["stream_options"], {"include_usage": True})
                self.assertTrue(body["stream"])

    def test_tokens_from_usage(self):
        # two chunks carried five tokens (a server that streams several tokens per chunk)
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a b", " c d e"), sse(text_chunk("", finish="length")),
                               sse(usage_chunk(4, 5)), DONE])
        self.assert_ok(result, 5)
        self.assertEqual(result["prompt_tokens"], 4)
        self.assertEqual(result["tokens_from"], "usage")

    def test_tokens_from_chunks_without_usage(self):
        result = self.request([SSE_UNTIL_CLOSE, tokens(" a", " b", " c"), sse(text_chunk("", finish="stop")),
                               DONE])
        self.assert_ok(result, 3)
        self.assertEqual(result["prompt_tokens"], SPEC.prompt_tokens)
        self.assertEqual(result["tokens_from"], "chunks")

    def test_a_usage_without_a_whole_completion_count_is_not_used(self):
        for completion in ("5", -1, True, None, 2.5):
            with self.subTest(completion=completion):
                usage = {"id": "x", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": completion}}
                result = self.request([SSE_UNTIL_CLOSE, tokens(" a", " b"), sse(text_chunk("", finish="stop")),
                                       sse(usage), DONE])
                self.assert_ok(result, 2)
                self.assertEqual(result["tokens_from"], "chunks")

    def test_request_events_and_the_point_say_how_tokens_were_counted(self):
        def script(n, request):
            usage = [sse(usage_chunk(2, 2))] if n % 2 == 0 else []
            return [SSE_UNTIL_CLOSE, tokens(" a", " b"), sse(text_chunk("", finish="stop"))] + usage + [DONE]

        server = self.serve(script)
        agent, counts, _ = self.run_load(server, self.specs(4), concurrency=1)
        requests = sorted(agent.events.of_type("request"), key=lambda r: r["i"])
        self.assertEqual([r["tokens_from"] for r in requests], ["usage", "chunks", "usage", "chunks"])
        self.assertEqual(counts.end_fields()["tokens_from"], "mixed")

        server = self.serve([SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish="stop")), DONE])
        agent, counts, _ = self.run_load(server, self.specs(3))
        self.assertEqual(counts.end_fields()["tokens_from"], "chunks")
        # warm-up requests are not the point's
        server = self.serve([SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish="stop")), DONE])
        agent, counts, _ = self.run_load(server, self.specs(3), warmup=True)
        self.assertNotIn("tokens_from", counts.end_fields())


RATE_LIMITED = b'{"error": {"message": "Rate limit reached: 8 requests in flight", "type": "rate_limit_error", "code": 429}}'
OVERLOADED = b'{"error": "Model is overloaded", "error_type": "overloaded"}'  # TGI


class ThrottleTest(LoadTestCase):
    """HTTP 429 and 503: failed requests with the status and the engine's message; new requests wait as
    Retry-After says, or back off exponentially with jitter, never past the point's time limit."""

    OK_STREAM = [SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish="stop")), DONE]

    def test_429_records_status_message_and_retry_after(self):
        result = self.request(http_error(429, "Too Many Requests", RATE_LIMITED, ("Retry-After: 2",)))
        self.assert_failed(result, "HTTP 429", "Rate limit reached: 8 requests in flight")
        self.assertEqual(result["http_status"], 429)
        self.assertEqual(result["retry_after_s"], 2.0)
        self.assertFalse(result["connection_lost"])

    def test_503_with_an_http_date_and_tgi_error_body(self):
        import email.utils
        when = email.utils.formatdate(time.time() + 3, usegmt=True)
        result = self.request(http_error(503, "Service Unavailable", OVERLOADED, ("Retry-After: " + when,)))
        self.assert_failed(result, "HTTP 503", "Model is overloaded")
        self.assertEqual(result["http_status"], 503)
        self.assertTrue(1.0 <= result["retry_after_s"] <= 3.5, result["retry_after_s"])

    def test_retry_after_values(self):
        now = 1_700_000_000.0
        self.assertEqual(load.parse_retry_after("120", now), 120.0)
        self.assertEqual(load.parse_retry_after(" 5 ", now), 5.0)
        self.assertEqual(load.parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now), 10.0)
        self.assertEqual(load.parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), 0.0)  # in the past
        for bad in (None, "", "soon", "-3", "nan", "inf"):
            self.assertIsNone(load.parse_retry_after(bad, now), bad)

    def test_new_requests_wait_as_retry_after_says(self):
        server = self.serve(lambda n, request: (
            http_error(429, "Too Many Requests", RATE_LIMITED, ("Retry-After: 1",)) if n == 0 else self.OK_STREAM))
        agent, counts, stop = self.run_load(server, self.specs(3), concurrency=1)
        self.assertIsNone(stop)
        requests = sorted(agent.events.of_type("request"), key=lambda r: r["i"])
        self.assertEqual([r["ok"] for r in requests], [False, True, True])
        self.assertEqual(requests[0]["http_status"], 429)
        self.assertIn("Rate limit reached", requests[0]["error"])
        self.assertGreaterEqual(requests[1]["t_start"] - requests[0]["t_end"], 0.95)
        self.assertLess(requests[2]["t_start"] - requests[1]["t_end"], 0.5)
        self.assertEqual((counts.requests, counts.errors), (3, 1))
        self.assertEqual(counts.end_fields()["throttled"], 1)
        logs = [e["msg"] for e in agent.events.of_type("log")]
        self.assertTrue(any("HTTP 429" in m and "Retry-After" in m for m in logs), logs)
        self.assertTrue(any("1 of 3 measured requests failed" in m and "1 throttled" in m for m in logs), logs)

    def test_exponential_backoff_with_jitter_without_retry_after(self):
        statuses = {0: 503, 1: 503, 2: 503, 4: 503}

        def script(n, request):
            if n in statuses:
                return http_error(503, "Service Unavailable", b'{"detail": "engine busy"}')
            return self.OK_STREAM

        server = self.serve(script)
        agent, counts, stop = self.run_load(server, self.specs(6), concurrency=1)
        requests = sorted(agent.events.of_type("request"), key=lambda r: r["i"])
        self.assertEqual([r["ok"] for r in requests], [False, False, False, True, False, True])
        gaps = [b["t_start"] - a["t_end"] for a, b in zip(requests, requests[1:])]
        base = load.BACKOFF_BASE_S
        for k in range(3):  # each wait in [step/2, step], the step doubling
            self.assertGreaterEqual(gaps[k], base * 2 ** k / 2 - 0.01, gaps)
            self.assertLessEqual(gaps[k], base * 2 ** k + 0.2, gaps)
        self.assertLess(gaps[3], 0.1, gaps)  # after a success no wait...
        self.assertLessEqual(gaps[4], base + 0.2, gaps)  # ...and the next throttle starts from the base again
        self.assertIn("engine busy", requests[0]["error"])
        self.assertEqual(counts.end_fields()["throttled"], 4)

    def test_a_wait_never_outlasts_the_time_limit(self):
        server = self.serve(lambda n, request: http_error(429, "Too Many Requests", RATE_LIMITED,
                                                          ("Retry-After: 30",)))
        started = time.monotonic()
        agent, counts, stop = self.run_load(server, self.specs(3), concurrency=1, time_limit_s=1.0)
        self.assertEqual(stop, "timeout")
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertEqual((counts.requests, counts.errors), (1, 1))

    def test_a_cancel_ends_the_wait(self):
        server = self.serve(lambda n, request: http_error(429, "Too Many Requests", RATE_LIMITED,
                                                          ("Retry-After: 30",)))
        agent = FakeAgent()
        threading.Timer(0.3, agent.cancel.set).start()
        started = time.monotonic()
        agent, counts, stop = self.run_load(server, self.specs(3), agent=agent, concurrency=1)
        self.assertEqual(stop, "cancelled")
        self.assertLess(time.monotonic() - started, 2.0)

    def test_request_rate_arrivals_wait_too(self):
        server = self.serve(lambda n, request: (
            http_error(429, "Too Many Requests", RATE_LIMITED, ("Retry-After: 1",)) if n == 0 else self.OK_STREAM))
        agent, counts, stop = self.run_load(server, self.specs(6), concurrency=None, request_rate=20.0)
        requests = sorted(agent.events.of_type("request"), key=lambda r: r["t_start"])
        self.assertEqual(len(requests), 6)
        throttled = [r for r in requests if r.get("http_status") == 429]
        self.assertEqual(len(throttled), 1)
        # nothing was sent while the server had asked to wait
        held_until = throttled[0]["t_end"] + 0.95
        self.assertFalse([r for r in requests if throttled[0]["t_end"] < r["t_start"] < held_until], requests)
        self.assertEqual(counts.end_fields()["throttled"], 1)


class PointEndTest(AgentTestCase):
    """The agent, run as it ships, against the scripted server: what a point's end event says."""

    def run_against(self, server: ScriptedServer, points: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        job = self.make_job(points, telemetry={"source": "sim", "interval_s": 0.1, "idle_baseline_s": 0})
        job["server"] = {"sim": False, "command": None, "base_url": server.base_url, "api": "completions",
                         "model": "m", "ready_timeout_s": 5, "env": {}}
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        return events

    def test_a_point_without_usage_says_its_tokens_are_chunks(self):
        server = ScriptedServer(lambda n, request: [SSE_UNTIL_CLOSE, tokens(" a", " b"),
                                                    sse(text_chunk("", finish="stop")), DONE])
        self.addCleanup(server.close)
        events = self.run_against(server, [http_point("plain", num_prompts=3, warmup_requests=1)])
        requests = self.of_type(events, "request", point="plain")
        self.assertEqual(len(requests), 4)
        self.assertTrue(all(r["ok"] and r["tokens_from"] == "chunks" and r["output_tokens"] == 2
                            for r in requests), requests)
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual((end["status"], end["requests"], end["errors"], end["tokens_from"]),
                         ("ok", 3, 0, "chunks"))


    def test_the_api_key_is_read_on_the_host_and_sent_with_every_request_and_probe(self):
        server = ScriptedServer(lambda n, request: [SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish="stop")),
                                                    DONE])
        self.addCleanup(server.close)
        job = self.make_job([http_point("hosted", num_prompts=2, warmup_requests=0)],
                            telemetry={"source": "sim", "interval_s": 0.1, "idle_baseline_s": 0})
        job["server"] = {"sim": False, "command": None, "base_url": server.base_url, "api": "completions",
                         "model": "m", "ready_timeout_s": 5, "env": {}, "api_key_env": "WB_TEST_API_KEY"}
        result = self.run_agent(job, env=dict(self.env, WB_TEST_API_KEY="sk-test-123"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(server.requests), 3)  # the readiness probe, then two POSTs
        self.assertTrue(all(r["headers"].get("authorization") == "Bearer sk-test-123" for r in server.requests),
                        [r["headers"] for r in server.requests])
        with open(os.path.join(result.run_dir, "events.ndjson")) as f:
            self.assertNotIn("sk-test-123", f.read())  # the key is in no event

    def test_an_api_key_variable_that_is_not_set_is_a_clear_error(self):
        server = ScriptedServer(lambda n, request: [SSE_UNTIL_CLOSE, DONE])
        self.addCleanup(server.close)
        job = self.make_job([http_point("hosted", num_prompts=1)],
                            telemetry={"source": "sim", "interval_s": 0.1, "idle_baseline_s": 0})
        job["server"] = {"sim": False, "command": None, "base_url": server.base_url, "api": "completions",
                         "model": "m", "ready_timeout_s": 5, "env": {}, "api_key_env": "WB_TEST_UNSET_KEY"}
        result = self.run_agent(job, env=dict(self.env, WB_TEST_UNSET_KEY=""))
        events = self.events(result.run_dir)
        errors = self.of_type(events, "error")
        self.assertTrue(any("WB_TEST_UNSET_KEY" in e["message"] and "not set" in e["message"] for e in errors), errors)
        self.assertEqual(server.posts(), [])

    def test_a_throttled_point_says_so_at_its_end(self):
        def script(n, request):
            if n % 2 == 1:
                return http_error(429, "Too Many Requests", RATE_LIMITED, ("Retry-After: 0",))
            return [SSE_UNTIL_CLOSE, tokens(" a"), sse(text_chunk("", finish="stop")), sse(usage_chunk(8, 1)), DONE]

        server = ScriptedServer(script)
        self.addCleanup(server.close)
        events = self.run_against(server, [http_point("busy", num_prompts=4, concurrency=1)])
        requests = self.of_type(events, "request", point="busy")
        self.assertEqual([r["ok"] for r in requests], [True, False, True, False])
        self.assertEqual([r.get("http_status") for r in requests], [None, 429, None, 429])
        self.assertIn("HTTP 429: Rate limit reached", requests[1]["error"])
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual((end["status"], end["requests"], end["errors"], end["throttled"], end["tokens_from"]),
                         ("ok", 4, 2, 2, "usage"))
        warnings = [e["msg"] for e in self.of_type(events, "log") if e["level"] == "warn"]
        self.assertTrue(any("2 of 4 measured requests failed" in m and "2 throttled" in m for m in warnings),
                        warnings)


if __name__ == "__main__":
    unittest.main()
