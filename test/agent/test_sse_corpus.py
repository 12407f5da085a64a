"""Every recorded engine stream in test/fixtures/sse/, replayed byte for byte through the agent's request path
(load.stream_request) and fed straight to StreamParser. What the agent records is checked against what the
test reads from the transcript on its own: which event first carries output, the gaps between events, the
tokens each event carried where the engine counts them, the usage report, how the stream ends."""

import json
import unittest
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .helpers import AGENT_DIR  # noqa: F401  (puts agent/ on sys.path)
from .replay_server import ReplayServer, Transcript, all_transcripts, load_transcript

from wattbench_agent import load, sse
from wattbench_agent.job import WorkloadConfig
from wattbench_agent.client import Endpoint
from wattbench_agent.prompts import RequestSpec
from wattbench_agent.sse import StreamParser


@dataclass
class Expected:
    """What a transcript says, read here without the agent's code."""
    ok: bool
    error_part: str = ""  # a piece of the engine's own message the agent's error must carry
    http_status: Optional[int] = None
    reset: bool = False
    arrivals: List[Tuple[float, int]] = field(default_factory=list)  # (seconds from the start, tokens)
    usage_tokens: Optional[int] = None  # what the engine reported in total
    native_count: bool = False  # ... in TGI generate_stream's details, not in a usage object

    @property
    def ttft(self) -> Optional[float]:
        return self.arrivals[0][0] if self.arrivals else None

    @property
    def output_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else sum(k for _, k in self.arrivals)

    @property
    def itl(self) -> List[float]:
        """One gap per token after the first: a chunk of k tokens arriving g after the previous token-bearing
        chunk gives k gaps of g/k; the first chunk's extra tokens came with it (gaps of 0)."""
        gaps = []  # type: List[float]
        previous = None  # type: Optional[float]
        for at, k in self.arrivals:
            if k == 0:
                continue
            gaps.extend([0.0] * (k - 1) if previous is None else [(at - previous) / k] * k)
            previous = at
        return gaps


def events_of(write: bytes) -> Tuple[List[str], List[str], str]:
    """(data values, error-field values, event type) of one SSE event, by the SSE spec's field rules."""
    data, errors, kind = [], [], ""
    for line in write.decode("utf-8").splitlines():
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "error":
            errors.append(value)
        elif name == "event":
            kind = value
    return data, errors, kind


def message_of(obj: Any) -> str:
    """The engine's message in an error body: {"error": {"message"}}, {"error": "..."}, {"message"}."""
    if isinstance(obj, dict):
        inner = obj.get("error", obj)
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return json.dumps(obj)


def has_output(choice: Dict[str, Any]) -> bool:
    delta = choice.get("delta") or {}
    return bool(choice.get("text") or delta.get("content") or delta.get("reasoning")
                or delta.get("reasoning_content") or delta.get("tool_calls"))


def expected_of(t: Transcript) -> Expected:
    if t.status != 200:
        return Expected(ok=False, http_status=t.status, error_part=message_of(json.loads(t.body))[:60])
    chunks = []  # type: List[Tuple[float, Dict[str, Any]]]
    at = 0.0
    done = False
    for gap, write in zip(t.gaps, t.writes):
        at += gap
        data, errors, _ = events_of(write)
        if errors:
            return Expected(ok=False, error_part=message_of(json.loads(errors[0]))[:60])
        if data == ["[DONE]"]:
            done = True
            break
        if data:
            chunks.append((at, json.loads("\n".join(data))))
    # which running count, if any, the engine puts on every chunk that has choices
    with_choices = [c for _, c in chunks if c.get("choices")]
    counter = None
    if with_choices and all((c.get("usage") or {}).get("completion_tokens") is not None for c in with_choices):
        counter = lambda c: c["usage"]["completion_tokens"]  # noqa: E731
    elif with_choices and all("predicted_n" in (c.get("timings") or {}) for c in with_choices):
        counter = lambda c: c["timings"]["predicted_n"]  # noqa: E731
    expected = Expected(ok=True, reset=t.reset)
    finish = None  # type: Any
    seen = 0
    for at, chunk in chunks:
        if chunk.get("error"):
            return Expected(ok=False, error_part=message_of(chunk)[:60], arrivals=expected.arrivals)
        if "token" in chunk:  # TGI generate_stream: one token per event
            expected.arrivals.append((at, 1))
            details = chunk.get("details") or {}
            finish = details.get("finish_reason") or ("end" if chunk.get("generated_text") is not None else None)
            if "generated_tokens" in details:
                expected.usage_tokens = details["generated_tokens"]
                expected.native_count = True
            continue
        if chunk.get("usage"):
            expected.usage_tokens = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices") or []:
            finish = choice.get("finish_reason") or finish
            if has_output(choice):
                count = counter(chunk) if counter else seen + 1
                expected.arrivals.append((at, count - seen))
            if counter:
                seen = counter(chunk)
            elif has_output(choice):
                seen += 1
    if isinstance(finish, dict):
        return Expected(ok=False, error_part=finish.get("message", "abort")[:60], arrivals=expected.arrivals)
    if finish in ("abort", "error"):
        return Expected(ok=False, error_part=finish, arrivals=expected.arrivals)
    if t.reset:
        return Expected(ok=False, reset=True, arrivals=expected.arrivals)
    if not expected.arrivals and finish is None:
        return Expected(ok=False, error_part="[DONE]" if done else "ended before")
    expected.ok = done or finish is not None
    if not expected.ok:
        expected.error_part = "ended before"
    return expected


def workload() -> WorkloadConfig:
    return WorkloadConfig(kind="http", dataset=None, num_prompts=1, max_tokens=16, concurrency=1, request_rate=None,
                          warmup_requests=0, temperature=0.0, ignore_eos=False, time_limit_s=None, seed=1, command=None)


SLACK_S = 0.25  # loopback on a shared 2-core machine: how much later than its scheduled time a chunk may land


class CorpusSanityTest(unittest.TestCase):
    def test_the_corpus_covers_every_engine_and_quirk(self):
        names = all_transcripts()
        for engine in ("vllm-", "sglang-", "tgi-native", "tgi-chat", "llamacpp-", "ollama-", "trtllm-", "openai-"):
            self.assertGreaterEqual(len([n for n in names if n.startswith(engine)]), 1 if "tgi" in engine else 2,
                                    engine)
        for name in names:
            t = load_transcript(name)
            for key in ("engine", "version", "endpoint", "request", "source", "verbatim", "assembled", "timing"):
                self.assertIn(key, t.header, name)

    def test_an_expectation_can_fail(self):
        # the test's own reading must see the difference between the role chunk and the first token
        t = load_transcript("vllm-chat-role-only-first-chunk.transcript")
        expected = expected_of(t)
        self.assertAlmostEqual(expected.ttft, t.gaps[0] + t.gaps[1])
        self.assertEqual(expected.output_tokens, 5)


class CorpusThroughParserTest(unittest.TestCase):
    """Each transcript's body fed line by line to StreamParser with the recorded arrival times."""

    @staticmethod
    def replay(t: Any, feed_write: Callable[[StreamParser, bytes, float], None]) -> Dict[str, Any]:
        """The transcript's writes at their times into a parser, each by `feed_write`, as far as its end."""
        parser = StreamParser()
        at = 0.0
        for gap, write in zip(t.gaps, t.writes):
            at += gap
            feed_write(parser, write, at)
            if parser.finished:
                break
        else:
            parser.end(at)
        return parser.result(0.0)

    @staticmethod
    def by_lines(parser: StreamParser, write: bytes, at: float) -> None:
        for line in write.splitlines(keepends=True):
            parser.feed(line, at)

    def test_every_transcript(self):
        for name in all_transcripts():
            t = load_transcript(name)
            if t.status != 200:
                continue
            with self.subTest(transcript=name):
                self.check(self.replay(t, self.by_lines), expected_of(t), name)

    def test_every_transcript_as_the_client_feeds_it(self):
        # whole one-line events through feed_event (its learned-template step included), the rest line by line
        decoded = counting_decoder(self)
        events = []  # type: List[bytes]

        def as_the_client(parser: StreamParser, write: bytes, at: float) -> None:
            if write.startswith(b"data: {") and write.endswith(b"}\n\n") and write.count(b"\n") == 2:
                parser.feed_event(write[6:-2], at)
                events.append(write)
            else:
                self.by_lines(parser, write, at)

        fast = 0
        for name in all_transcripts():
            t = load_transcript(name)
            if t.status != 200:
                continue
            with self.subTest(transcript=name):
                del events[:]
                decoded.count = 0
                result = self.replay(t, as_the_client)
                fast += len(events) - decoded.count
                self.check(result, expected_of(t), name)
        self.assertGreater(fast, 0, "no event was known by its template: the step this test is for never ran")

    def check(self, result: Dict[str, Any], expected: Expected, name: str) -> None:
        ok = result["error"] is None
        self.assertEqual(ok, expected.ok and not expected.reset, result)
        if expected.error_part:
            self.assertIn(expected.error_part, result["error"] or "")
        if expected.ttft is None:
            self.assertIsNone(result["ttft_s"])
        else:
            self.assertAlmostEqual(result["ttft_s"], expected.ttft, places=5)
        self.assertEqual(len(result["itl_s"]), len(expected.itl), result)
        for got, want in zip(result["itl_s"], expected.itl):
            self.assertAlmostEqual(got, want, places=5)
        self.assertEqual(result["output_tokens"], expected.output_tokens, result)
        self.assertEqual(result["tokens_from"], "usage" if expected.usage_tokens is not None else "chunks")
        self.assertEqual(result["ok_end"], ok and not expected.reset)


def counting_decoder(test: unittest.TestCase) -> Any:
    """sse's JSON decoder, counting its calls for this test (`.count`)."""
    real = sse._raw_decode

    def decode(value: str) -> Any:
        decode.count += 1  # type: ignore[attr-defined]
        return real(value)

    decode.count = 0  # type: ignore[attr-defined]
    sse._raw_decode = decode
    test.addCleanup(setattr, sse, "_raw_decode", real)
    return decode


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def chat_chunk(delta: Dict[str, Any], finish: Any = None, usage: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """vLLM's chat chunk, as it writes it (compact, this field order)."""
    chunk = {"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1764700000, "model": "m",
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # type: Dict[str, Any]
    if usage is not None:
        chunk["usage"] = usage
    return chunk


class TemplateStepTest(unittest.TestCase):
    """feed_event knows most chunks by the bytes around their text; any chunk that differs elsewhere, or whose
    text needs JSON decoding, is parsed in full. Checked against what each chunk's own JSON says."""

    def feed(self, chunks: List[Dict[str, Any]]) -> Tuple[Dict[str, Any], int]:
        """The result of `chunks` fed as whole events 10 ms apart, and how many were never decoded."""
        decoded = counting_decoder(self)
        parser = StreamParser()
        for i, chunk in enumerate(chunks):
            parser.feed_event(compact(chunk), 0.01 * (i + 1))
        parser.feed(b"data: [DONE]\n", 0.01 * (len(chunks) + 1))
        parser.feed(b"\n", 0.01 * (len(chunks) + 1))
        return parser.result(0.0), len(chunks) - decoded.count

    def expect(self, chunks: List[Dict[str, Any]]) -> Tuple[float, int, Any]:
        """(TTFT, chunks with output, the last finish_reason) read from the chunks themselves."""
        with_output = [i for i, c in enumerate(chunks) if any(has_output(ch) for ch in c["choices"])]
        finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
        return 0.01 * (with_output[0] + 1), len(with_output), finishes[-1] if finishes else None

    def check(self, chunks: List[Dict[str, Any]]) -> Tuple[Dict[str, Any], int]:
        result, undecoded = self.feed(chunks)
        ttft, count, finish = self.expect(chunks)
        self.assertAlmostEqual(result["ttft_s"], ttft, places=9)
        self.assertEqual(result["output_tokens"], count, result)
        self.assertEqual(result["finish_reason"], finish)
        self.assertEqual(len(result["itl_s"]), count - 1)
        return result, undecoded

    def test_plain_chunks_are_known_without_decoding(self):
        words = ["Hel", "lo", " wor", "ld", " é", "ü", " 42"]
        chunks = [chat_chunk({"role": "assistant", "content": ""})] + [chat_chunk({"content": w}) for w in words]
        chunks.append(chat_chunk({"content": "!"}, finish="stop"))
        _, undecoded = self.check(chunks)
        self.assertEqual(undecoded, len(words) - 1)  # all but the first plain one, which taught the template

    def test_text_that_needs_decoding_is_parsed(self):
        # escapes and control characters change nothing around the text but are not plain: parsed in full
        texts = ["a", 'say "hi"', "b", "back\\slash", "tab\t", "line\n", "c", "\u0001", "d"]
        chunks = [chat_chunk({"content": t}) for t in texts] + [chat_chunk({}, finish="length")]
        _, undecoded = self.check(chunks)
        self.assertEqual(undecoded, 3)  # b, c and d: plain, like "a" around their text

    def test_empty_text_is_no_token(self):
        chunks = [chat_chunk({"content": w}) for w in ["a", "", "b", ""]] + [chat_chunk({}, finish="stop")]
        result, _ = self.check(chunks)
        self.assertEqual(result["output_tokens"], 2)

    def test_a_chunk_that_differs_beside_its_text_is_parsed(self):
        # reasoning, then content; a finish with text; a usage report at the end; a new id midway
        chunks = [chat_chunk({"reasoning": w}) for w in ["th", "ink", "ing"]]
        chunks += [chat_chunk({"content": w}) for w in ["an", "swer"]]
        moved = chat_chunk({"content": "x"})
        moved["id"] = "chatcmpl-8"
        chunks += [moved, chat_chunk({"content": "y"}), chat_chunk({"content": "z"}, finish="stop")]
        result, undecoded = self.check(chunks)
        self.assertEqual(undecoded, 3)  # ink, ing, swer: x has another id, y again the first
        last = chat_chunk({"content": "w"}, usage={"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12})
        result, _ = self.feed(chunks[:-1] + [last])
        self.assertEqual(result["output_tokens"], 9)
        self.assertEqual(result["tokens_from"], "usage")

    def test_an_error_or_abort_after_plain_chunks_is_seen(self):
        chunks = [chat_chunk({"content": w}) for w in ["a", "b", "c"]]
        result, _ = self.feed(chunks + [chat_chunk({"content": "d"}, finish="abort")])
        self.assertIn("abort", result["error"] or "")
        result, _ = self.feed(chunks + [{"error": {"message": "KV cache exhausted", "code": 500}}])
        self.assertIn("KV cache exhausted", result["error"] or "")

    def test_a_chunk_with_a_running_count_is_never_a_template(self):
        # continuous usage stats: every chunk's count is read, so none is known by its bytes alone
        chunks = [chat_chunk({"content": w}, usage={"prompt_tokens": 3, "completion_tokens": i + 2,
                                                     "total_tokens": i + 5}) for i, w in enumerate("abcd")]
        result, undecoded = self.feed(chunks)
        self.assertEqual(undecoded, 0)
        self.assertEqual(result["output_tokens"], 5)


class CorpusThroughLoadTest(unittest.TestCase):
    """Each transcript replayed over loopback and read by load.stream_request, as the agent reads a server."""

    def test_every_transcript(self):
        for name in all_transcripts():
            t = load_transcript(name)
            with self.subTest(transcript=name):
                server = ReplayServer(t)
                try:
                    endpoint = t.header["endpoint"]
                    api = ("generate" if "/generate_stream" in endpoint
                           else "completions" if "/v1/completions" in endpoint else "chat")
                    result = load.stream_request(Endpoint(server.base_url, api, "m"), RequestSpec("hi", 1, 16),
                                                 workload(), lambda sock: None)
                finally:
                    server.close()
                self.check(t, result, expected_of(t))

    def check(self, t: Transcript, result: Dict[str, Any], expected: Expected) -> None:
        self.assertEqual(result["ok"], expected.ok and not expected.reset, result)
        if expected.error_part:
            self.assertIn(expected.error_part, result["error"] or "")
        if expected.http_status is not None:
            self.assertEqual(result["http_status"], expected.http_status)
            return
        if expected.reset:
            self.assertTrue(result["connection_lost"], result)
        if expected.ttft is None:
            self.assertIsNone(result["ttft_s"])
        else:
            # never before the chunk was sent; not as late as the chunk after it
            self.assertGreaterEqual(result["ttft_s"], expected.ttft - 0.002, result)
            self.assertLess(result["ttft_s"], expected.ttft + SLACK_S, result)
        self.assertEqual(result["output_tokens"], expected.output_tokens, result)
        self.assertEqual(result["tokens_from"], "usage" if expected.usage_tokens is not None else "chunks")
        self.assertEqual(len(result["itl_s"]), len(expected.itl), result)
        self.assertAlmostEqual(sum(result["itl_s"]), sum(expected.itl), delta=SLACK_S)


if __name__ == "__main__":
    unittest.main()
