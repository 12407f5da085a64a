"""A fast stand-in OpenAI-compatible server for timing the agent's load generator: asyncio, one process,
every stream a vLLM-format chunked event stream of one token per chunk at a known inter-token gap.

    python3 bench/loadgen_server.py --gap-ms 10 --ttft-ms 20 [--port 0] [--spread]

prints `PORT <n>` once it listens. Each POST to /v1/completions or /v1/chat/completions answers
`max_tokens` tokens as vLLM streams them (the role chunk first for chat, the last token with its
finish_reason, a usage chunk with empty choices, `data: [DONE]`, the chunked body's last chunk). Token k of a
stream is sent at received + ttft + phase + k * gap on the loop's clock, phase 0, or uniform in [0, gap) per
stream with --spread, so 2,048 streams that start together do not all send in the same instant. GET
/v1/models and /health answer 200; GET /stats answers what was really sent (each stream's actual send gaps
and first-token times, how late the server was against its schedule, most streams at once, the first few
request bodies); GET /stats?reset=1 also clears them.
`first_sends` maps each prompt to when its first token was sent on CLOCK_MONOTONIC (the loop's clock,
time.monotonic(), shared by every process on the machine), so a client on the same machine that sends
distinct prompts can tell each request's true TTFT from its own send time.
A POST over HTTP/1.1 keeps its connection for the client's next request unless the request says
`Connection: close` (as uvicorn, under vLLM, SGLang and TGI's router, does); GETs close theirs."""

import argparse
import asyncio
import gc
import json
import random
import sys
import time
import urllib.parse
from typing import Any, Dict, List, Optional


def quantile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(obj: Dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class Stats:
    KEEP_BODIES = 5

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.streams = 0
        self.inflight = 0
        self.inflight_max = 0
        self.chunks = 0  # chunks that carried a token
        self.first_send = None  # type: Optional[float]
        self.last_send = None  # type: Optional[float]
        self.gaps = []  # type: List[float]
        self.ttfts = []  # type: List[float]
        self.late = []  # type: List[float]
        self.bodies = []  # type: List[Any]
        self.connections = 0  # connections accepted
        self.first_sends = {}  # type: Dict[str, float]  # each prompt's first token: when sent (CLOCK_MONOTONIC)
        self.cpu_start = time.process_time()

    def report(self) -> Dict[str, Any]:
        ms = lambda values, q: None if not values else round(quantile(values, q) * 1000, 4)  # noqa: E731
        span = (self.last_send - self.first_send) if self.first_send is not None and self.last_send else None
        return {"streams": self.streams, "inflight": self.inflight, "inflight_max": self.inflight_max,
                "chunks": self.chunks, "send_span_s": span,
                "chunks_per_s": round(self.chunks / span, 1) if span else None,
                "gap_ms": {"p50": ms(self.gaps, 0.5), "p99": ms(self.gaps, 0.99), "n": len(self.gaps)},
                "ttft_ms": {"p50": ms(self.ttfts, 0.5), "p99": ms(self.ttfts, 0.99), "n": len(self.ttfts)},
                "late_ms": {"p50": ms(self.late, 0.5), "p99": ms(self.late, 0.99),
                            "max": round(max(self.late) * 1000, 4) if self.late else None},
                "connections": self.connections,
                "first_sends": self.first_sends,
                "cpu_s": round(time.process_time() - self.cpu_start, 3),  # the server's own CPU time since reset
                "bodies": self.bodies}


class Stream(asyncio.Protocol):
    def __init__(self, server: "Server") -> None:
        self.server = server
        self.loop = server.loop
        self.buf = b""
        self.transport = None  # type: Optional[asyncio.Transport]
        self.timer = None  # type: Optional[asyncio.TimerHandle]
        self.active = False
        self.keep = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.stats.connections += 1

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self._end()

    def data_received(self, data: bytes) -> None:
        if self.buf is None:
            return
        self.buf += data
        if self.active:
            return  # the next request on this kept-alive connection, sent before this answer ended: later
        self._next_request()

    def _next_request(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if len(self.buf) < end + 4 + length:
            return
        body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
        method, target, version = (head[0].split(" ") + ["", ""])[:3]
        # HTTP/1.1 keeps the connection unless the client says close (RFC 9112 9.3), as uvicorn does
        self.keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        self.handle(method, target, body)

    def reply(self, status: str, body: bytes) -> None:
        self.buf = None
        self.transport.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (status.encode(), len(body), body))
        self.transport.close()

    def handle(self, method: str, target: str, raw: bytes) -> None:
        path, _, query = target.partition("?")
        stats = self.server.stats
        if method == "GET":
            if path == "/stats":
                report = stats.report()
                if "reset=1" in urllib.parse.unquote(query):
                    stats.reset()
                self.reply("200 OK", json.dumps(report).encode())
            elif path in ("/v1/models", "/health"):
                self.reply("200 OK", b'{"object":"list","data":[{"id":"m","object":"model"}]}')
            else:
                self.reply("404 Not Found", b'{"detail":"Not Found"}')
            return
        try:
            request = json.loads(raw)
        except ValueError:
            self.reply("400 Bad Request", b'{"error":{"message":"body is not JSON"}}')
            return
        if len(stats.bodies) < stats.KEEP_BODIES:
            stats.bodies.append(request)
        self.chat = path.endswith("/chat/completions")
        self.tokens = max(1, int(request.get("max_tokens") or 16))
        prompt = request.get("prompt")
        if prompt is None and isinstance(request.get("messages"), list) and request["messages"]:
            prompt = request["messages"][0].get("content")
        self.prompt = str(prompt or "")
        self.prompt_tokens = len(self.prompt.split())
        self.sent = 0
        self.received = self.loop.time()
        server = self.server
        phase = server.rng.uniform(0, server.gap) if server.spread else 0.0
        self.first_due = self.received + server.ttft + phase
        self.due = self.first_due
        self.last = None  # type: Optional[float]
        self.active = True
        stats.streams += 1
        stats.inflight += 1
        stats.inflight_max = max(stats.inflight_max, stats.inflight)
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
                b"Transfer-Encoding: chunked\r\n" + (b"" if self.keep else b"Connection: close\r\n") + b"\r\n")
        if self.chat:  # vLLM's first chat chunk: the role, with empty content
            head += chunked(sse(self._chunk({"role": "assistant", "content": ""}, None)))
        self.transport.write(head)
        self.timer = self.loop.call_at(self.due, self.send_token)

    def _chunk(self, delta: Any, finish: Optional[str]) -> Dict[str, Any]:
        if self.chat:
            return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "text": delta["content"], "logprobs": None, "finish_reason": finish}]}

    def send_token(self) -> None:
        t = self.loop.time()
        stats = self.server.stats
        self.sent += 1
        last = self.sent == self.tokens
        data = self.server.token_chunk[self.chat] if not last else chunked(
            sse(self._chunk({"content": " tok"}, "length")))
        self.transport.write(data)
        stats.chunks += 1
        stats.late.append(t - self.due)
        if self.last is None:
            stats.ttfts.append(t - self.received)
            if len(stats.first_sends) < 1000000:
                stats.first_sends[self.prompt] = t
        else:
            stats.gaps.append(t - self.last)
        self.last = t
        if stats.first_send is None:
            stats.first_send = t
        stats.last_send = t
        if last:
            usage = {"id": "x", "object": "chat.completion.chunk" if self.chat else "text_completion", "created": 1,
                     "model": "m", "choices": [],
                     "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.tokens,
                               "total_tokens": self.prompt_tokens + self.tokens}}
            self.transport.write(chunked(sse(usage)) + chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            self._end()
            if not self.keep:
                self.transport.close()
            elif self.buf:
                self._next_request()
            return
        self.due = self.first_due + self.sent * self.server.gap  # absolute: a late send does not delay the rest
        self.timer = self.loop.call_at(self.due, self.send_token)

    def _end(self) -> None:
        if self.active:
            self.active = False
            self.server.stats.inflight -= 1


class Server:
    def __init__(self, loop: asyncio.AbstractEventLoop, gap_s: float, ttft_s: float, spread: bool, seed: int) -> None:
        self.loop = loop
        self.gap = gap_s
        self.ttft = ttft_s
        self.spread = spread
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.token_chunk = {}  # type: Dict[bool, bytes]
        for chat in (False, True):
            probe = Stream(self)
            probe.chat = chat
            self.token_chunk[chat] = chunked(sse(probe._chunk({"content": " tok"}, None)))


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server = Server(loop, args.gap_ms / 1000.0, args.ttft_ms / 1000.0, args.spread, args.seed)
    listener = await loop.create_server(lambda: Stream(server), "127.0.0.1", args.port, backlog=4096)
    port = listener.sockets[0].getsockname()[1]
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--spread", action="store_true", help="each stream's phase uniform in [0, gap)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    # the cyclic collector's full scans stall every stream's sends (tens of ms at 2,048 streams): freeze what
    # exists, run it rarely; nothing here makes cycles that must be collected soon
    gc.collect()
    gc.freeze()
    gc.set_threshold(50000, 20, 100)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
