"""One streamed request to an OpenAI-compatible server over raw HTTP/1.1 on asyncio, on a kept-alive
connection where the server allows: each read of the body is stamped with time.monotonic() as it is read and
parsed at once (splitting and parsing a read is a few microseconds), so every socket's reads are stamped by
a loop that never holds a long callback."""

import asyncio
import datetime
import email.utils
import json
import math
import socket
import ssl
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .job import WorkloadConfig
from .prompts import RequestSpec
from .readiness import probe_paths
from .sse import StreamParser, engine_message, one_line
from .stamped import ClockBridge, ReadCounts, Resolver, kernel_stamps_possible, open_stamped
from .util import now


REQUEST_CONNECT_TIMEOUT_S = 10.0


REQUEST_READ_TIMEOUT_S = 300.0  # longest silence tolerated inside one streamed response


PROBE_TIMEOUT_S = 2.0


DEFAULT_PROBE_PATHS = ("models", "/health")  # OpenAI-compatible servers list models under base_url


ERROR_BODY_LIMIT = 4000  # bytes of a non-200 answer's body read for its message


HEAD_LIMIT = 65536  # a status line and headers longer than this are no HTTP answer


# The fields the job itself sets; server.request_fields (an engine preset) cannot replace them.
OWN_BODY_FIELDS = ("model", "prompt", "messages", "max_tokens", "temperature", "top_p", "stream")

# ... and those it sets in a TGI native request's `parameters` (`api: generate`).
GENERATE_OWN_PARAMETERS = ("max_new_tokens", "details", "temperature", "top_p", "do_sample")


class Endpoint:
    """An inference server: where to send, which API (`completions`, `chat`: the OpenAI routes under
    base_url; `generate`: TGI's native `/generate_stream`), `request_fields` (the job's
    server.request_fields, merged into every body; None: the workload's ignore_eos decides), and `headers`
    sent with every request (e.g. `Authorization` for a hosted API)."""

    def __init__(self, base_url: str, api: str, model: str,
                 request_fields: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.api = api
        self.model = model
        self.request_fields = request_fields
        self.headers = dict(headers or {})
        self._extra_head = "".join("%s: %s\r\n" % (name, value) for name, value in self.headers.items())
        default_port = 443 if self.https else 80
        self.host_header = self.host if self.port == default_port else "%s:%d" % (self.host, self.port)
        if ":" in self.host and not self.host.startswith("["):  # an IPv6 literal
            self.host_header = "[%s]" % self.host if self.port == default_port else "[%s]:%d" % (self.host, self.port)

    @property
    def generate_path(self) -> str:
        if self.api == "generate":
            # TGI's native route is on the server's root, beside (not under) the OpenAI route's /v1
            root = self.base_path[:-3] if self.base_path.endswith("/v1") else self.base_path
            return root + "/generate_stream"
        return self.base_path + ("/chat/completions" if self.api == "chat" else "/completions")

    def probe(self) -> Tuple[bool, str]:
        """(ready, what went wrong): GET base_url/models, then /health on the root (no preset's paths given)."""
        return probe_paths(self.base_url, list(DEFAULT_PROBE_PATHS), PROBE_TIMEOUT_S, self.headers)

    def request_body(self, spec: RequestSpec, workload: WorkloadConfig) -> Dict[str, Any]:
        """The JSON body: server.request_fields first, then the job's own fields over them;
        stream_options is the union of both, always with include_usage."""
        if self.api == "generate":
            return self._generate_body(spec, workload)
        preset = self.request_fields or {}
        body = {key: value for key, value in preset.items() if key not in OWN_BODY_FIELDS}  # type: Dict[str, Any]
        options = preset.get("stream_options")
        body["stream_options"] = dict(options if isinstance(options, dict) else {}, include_usage=True)
        body.update(model=self.model, max_tokens=spec.max_tokens, temperature=workload.temperature, stream=True)
        if workload.top_p is not None:
            body["top_p"] = workload.top_p
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": spec.prompt}]
        else:
            body["prompt"] = spec.prompt
        if self.request_fields is None and workload.ignore_eos:
            body["ignore_eos"] = True  # a vLLM/SGLang extension; only sent when asked for
        return body

    def _generate_body(self, spec: RequestSpec, workload: WorkloadConfig) -> Dict[str, Any]:
        """TGI `POST /generate_stream`: `{"inputs", "parameters"}`, server.request_fields going into
        `parameters`. TGI's validation rejects `temperature` <= 0 and `top_p` outside (0, 1), and any
        temperature given turns sampling on: greedy (temperature 0) is sent as no temperature, top_p 1 as
        none. `details: true` puts finish_reason and generated_tokens on the last event. Nothing on this
        route generates past the end of sequence, so ignore_eos is never sent."""
        preset = self.request_fields or {}
        parameters = {key: value for key, value in preset.items()
                      if key not in GENERATE_OWN_PARAMETERS}  # type: Dict[str, Any]
        parameters.update(max_new_tokens=spec.max_tokens, details=True)
        if workload.temperature > 0:
            parameters["temperature"] = workload.temperature
        if workload.top_p is not None and 0 < workload.top_p < 1:
            parameters["top_p"] = workload.top_p
        return {"inputs": spec.prompt, "parameters": parameters}

    def request_bytes(self, body: Dict[str, Any]) -> bytes:
        payload = json.dumps(body).encode()
        head = ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
                "%sContent-Length: %d\r\n\r\n" % (self.generate_path, self.host_header, self._extra_head, len(payload)))
        return head.encode("latin-1") + payload


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (RFC 9110: delay-seconds or an HTTP-date); None when
    absent or unreadable. A date in the past is 0."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def describe_request_error(error: BaseException, endpoint: Endpoint) -> str:
    where = "%s:%d" % (endpoint.host, endpoint.port)
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (%s)" % where
    if isinstance(error, ConnectionResetError):
        return "connection reset by the server (%s)" % where
    if isinstance(error, (socket.timeout, asyncio.TimeoutError)):
        return "timed out (%s)" % where
    if isinstance(error, socket.gaierror):
        return "cannot resolve host %s" % endpoint.host
    return "%s: %s" % (type(error).__name__, error)


READ_BUFFER_BYTES = 256 * 1024  # what one read may take (asyncio's own per-read size)


DRAIN_TIMEOUT_S = 5.0  # after [DONE], how long a kept-alive connection may take to end its body before it is closed


IDLE_LIMIT = 4096  # idle kept-alive connections kept per server; more are closed


class Feeder:
    """What the requests on one loop share: the loop, one read buffer (every socket's read lands in it and
    is copied out at once, so a read allocates only its own bytes, not asyncio's 256 KiB), the idle
    kept-alive connections to each server, for the next request to reuse, and what plain-HTTP connections
    need for kernel receive stamps (stamped.py): the clock bridge, the resolved addresses, and how many
    reads were stamped which way. `kernel_stamps` False: every connection goes through asyncio's
    transport and reads are stamped when the loop reads them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, kernel_stamps: bool = True) -> None:
        self.loop = loop
        self.buffer = bytearray(READ_BUFFER_BYTES)
        self.view = memoryview(self.buffer)
        self.kernel_stamps = kernel_stamps and kernel_stamps_possible()
        self.bridge = ClockBridge()
        self.resolver = Resolver()
        self.reads = ReadCounts()  # reads of asyncio's transports are counted as loop-stamped too
        self._idle = {}  # type: Dict[Tuple[str, int, bool], List[StreamProtocol]]
        self._draining = set()  # type: Set[StreamProtocol]

    def take_idle(self, key: Tuple[str, int, bool]) -> "Optional[StreamProtocol]":
        """The connection to `key` that was idle the shortest (the likeliest to be still open), or None."""
        idle = self._idle.get(key)
        while idle:
            protocol = idle.pop()
            if not protocol.closed:
                return protocol
        return None

    def put_idle(self, protocol: "StreamProtocol") -> None:
        self._draining.discard(protocol)
        idle = self._idle.setdefault(protocol.key, [])
        if len(idle) >= IDLE_LIMIT:
            protocol.close()
            return
        idle.append(protocol)

    def drain(self, protocol: "StreamProtocol") -> None:
        """A connection is reading the rest of a finished response: idle once it has, closed at the loop's end."""
        self._draining.add(protocol)

    def forget(self, protocol: "StreamProtocol") -> None:
        """A connection closed: it is no longer idle nor draining."""
        self._draining.discard(protocol)
        idle = self._idle.get(protocol.key)
        if idle and protocol in idle:
            idle.remove(protocol)

    def close_idle(self) -> None:
        """Close every kept-alive connection (the loop is ending)."""
        protocols = list(self._draining) + [p for idle in self._idle.values() for p in idle]
        self._idle, self._draining = {}, set()
        for protocol in protocols:
            protocol.close()


SIZE, DATA, DATA_END = 0, 1, 2  # where a chunked body's reader is: the size line, its data, the CRLF after


class StreamProtocol(asyncio.BufferedProtocol):
    """One connection, and on it one response at a time (`begin`): status line and headers, then the body
    unframed (chunked, Content-Length, or until the server closes) and, for a 200, split into lines, each
    fed to the parser as soon as it is read, with the monotonic time its read began. `done` resolves when
    the response is over (the body ended, the parser found [DONE] or an error, the connection was lost, or
    `abort()`). An HTTP/1.1 response whose body ended by its framing, without `Connection: close`, leaves the
    connection open for the next request (`release`)."""

    def __init__(self, feeder: Feeder, key: Tuple[str, int, bool]) -> None:
        self.feeder = feeder
        self.key = key
        self.transport = None  # type: Optional[asyncio.Transport]
        self.closed = False  # the connection is over (lost, or closed by the agent)
        self.responses = 0  # responses begun on this connection
        self._release_on_end = False  # released while its body had not ended: idle once it does
        self._drain_timer = None  # type: Optional[asyncio.TimerHandle]
        self.begin(None)

    def begin(self, parser: Optional[StreamParser]) -> None:
        """Start a new response on this connection (None: no request yet)."""
        self.parser = parser
        self.done = self.feeder.loop.create_future()  # type: asyncio.Future
        if parser is None:
            self.done.set_result(None)
        else:
            self.responses += 1
        self.last_data = time.monotonic()
        self.received = False  # a byte of this response was read
        self.status = None  # type: Optional[int]
        self.reason = ""
        self.headers = {}  # type: Dict[str, str]
        self.body_complete = False  # the framing said the body ended (or the server closed an unframed one)
        self.closed_between_chunks = False  # the server closed a chunked body with no last chunk, no chunk cut
        self.lost = None  # type: Optional[BaseException]  # how the connection broke, if it did
        self.cut = ""  # what was cut short when the connection ended early
        self.aborted = ""  # why the agent closed the connection itself
        self.error_body = bytearray()
        self._keep = False  # HTTP/1.1, framed, no Connection: close: reusable once the body ends
        self._head = bytearray()
        self._framing = ""  # chunked | length | eof
        self._remaining = 0
        self._chunk_state = SIZE
        self._size_line = b""
        self._partial = b""  # the start of a line whose end has not come yet

    # --- asyncio.BufferedProtocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.feeder.view  # shared: buffer_updated copies a read out before the loop does anything else

    def buffer_updated(self, nbytes: int) -> None:
        self.feeder.reads.loop += 1
        self.data_received_at(bytes(self.feeder.view[:nbytes]), time.monotonic())

    def data_received(self, data: bytes) -> None:
        self.data_received_at(data, time.monotonic())

    def data_received_at(self, data: bytes, t: float) -> None:
        """A read, `t` when its bytes arrived (the kernel's stamp) or, failing that, when it was read."""
        self.last_data = t
        if self.parser is None:  # bytes on an idle connection: no answer to anything of ours
            self.close()
            return
        self.received = True
        if self.status is None:
            if self.done.done():
                return
            data = self._read_head(data)
            if self.status is None or self.done.done():
                return
        if data and not self.body_complete:
            self._body(data, t)

    def eof_received(self) -> Optional[bool]:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self.feeder.forget(self)
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if self.done.done():
            return
        if exc is None and not self.aborted and self.status is not None:
            if self._framing == "eof":
                self.body_complete = True
            elif not self.body_complete:
                self.closed_between_chunks = (self._framing == "chunked" and self._chunk_state == SIZE
                                              and not self._size_line)
                if self._framing != "chunked":
                    self.cut = "the connection closed before the Content-Length was read"
                elif self.closed_between_chunks:
                    self.cut = "the connection closed before the chunked body's last chunk"
                else:
                    self.cut = "the connection closed inside a chunk of the chunked body"
        if self._partial and (self.body_complete or self.status == 200):
            partial, self._partial = self._partial, b""
            self._feed([partial], time.monotonic())
        self.lost = exc
        self.done.set_result(None)

    # --- the agent's side ---

    def abort(self, why: str) -> None:
        if self.done.done():
            return
        self.aborted = why
        self._keep = False
        if self.transport is not None:
            self.transport.abort()  # connection_lost(None) comes later; the request is over now
        self.done.set_result(None)

    def close(self) -> None:
        self._keep = False
        self.closed = True
        self.feeder.forget(self)
        if self.transport is not None:
            self.transport.close()

    def release(self) -> None:
        """The request is done with this connection: keep it for the next one when the response allows
        (at once, or when its body ends, within DRAIN_TIMEOUT_S), else close it."""
        if self.closed or not self._keep or self.aborted or self.cut or self.status is None:
            self.close()
        elif self.body_complete:
            self.parser = None
            self.feeder.put_idle(self)
        else:
            self._release_on_end = True
            self.feeder.drain(self)
            self._drain_timer = self.feeder.loop.call_later(DRAIN_TIMEOUT_S, self.close)

    # --- reading ---

    def _finish(self) -> None:
        """The response is over for the request; the connection stays only to read a kept body's end."""
        if not self.done.done():
            self.done.set_result(None)
        if not self._keep or self.cut:
            self.close()

    def _feed(self, lines: List[bytes], t: float) -> None:
        parser = self.parser
        if parser is None or self.done.done():
            return
        for line in lines:
            parser.feed(line, t)
            if parser.saw_done or parser.error is not None:  # parser.finished, without a property call
                if parser.error is not None:
                    self._keep = False
                self._finish()
                return

    def _read_head(self, data: bytes) -> bytes:
        self._head += data
        while True:
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > HEAD_LIMIT:
                    self.cut = "the server's answer has no end of headers in its first %d bytes" % HEAD_LIMIT
                    self._finish()
                return b""
            head = bytes(self._head[:end]).decode("latin-1").split("\r\n")
            rest = bytes(self._head[end + 4:])
            parts = head[0].split(" ", 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                self.cut = "the server's answer is not HTTP: %s" % one_line(head[0], 200)
                self._finish()
                return b""
            if 100 <= status < 200:  # 100 Continue and friends: the real answer follows
                self._head = bytearray(rest)
                continue
            self.status = status
            self.reason = parts[2] if len(parts) > 2 else ""
            for line in head[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            coding = self.headers.get("transfer-encoding", "").lower()
            length = self.headers.get("content-length")
            if coding.split(",")[-1].strip() == "chunked":
                self._framing = "chunked"
            elif length is not None and length.strip().isdigit():
                self._framing = "length"
                self._remaining = int(length)
            else:
                self._framing = "eof"
            # RFC 9112 9.3: HTTP/1.1 persists unless a side says close; HTTP/1.0 (keep-alive there is opt-in) never
            self._keep = (parts[0] == "HTTP/1.1" and self._framing != "eof"
                          and "close" not in self.headers.get("connection", "").lower())
            self._head = bytearray()
            if self._framing == "length" and self._remaining == 0:
                self._complete()
            return rest

    def _body(self, data: bytes, t: float) -> None:
        if self._framing == "chunked":
            self._chunks(data, t)
        elif self._framing == "eof":
            self._content(data, t)
        else:
            piece = data[:self._remaining]
            self._remaining -= len(piece)
            self._content(piece, t)
            if self._remaining == 0:
                self._complete()

    def _chunks(self, data: bytes, t: float) -> None:
        i, n = 0, len(data)
        if self._chunk_state == SIZE and not self._size_line:
            # The usual read, whole chunks ("<hex size>\r\n<data>\r\n") from a size line on, without the
            # state machine's steps; anything else (a chunk cut by the read, an extension, the last chunk)
            # is left to it from where this stopped.
            find = data.find
            while i < n:
                j = find(b"\r\n", i, i + 18)
                if j < 0:
                    break
                try:
                    size = int(data[i:j], 16)
                except ValueError:
                    break
                end = j + 2 + size
                if size == 0 or end + 2 > n or data[end] != 0x0D or data[end + 1] != 0x0A:
                    break
                self._content(data[j + 2:end], t)
                i = end + 2
        while i < n:
            state = self._chunk_state
            if state == DATA:
                take = min(self._remaining, n - i)
                self._content(data[i:i + take] if i or take < n else data, t)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._chunk_state = DATA_END
            elif state == DATA_END:
                if data.startswith(b"\r\n", i):
                    i += 2
                    self._chunk_state = SIZE
                    continue
                if data[i] == 0x0A:
                    self._chunk_state = SIZE
                i += 1  # the CR before the LF, in a read of its own
            else:
                j = data.find(b"\n", i)
                if j < 0:
                    self._size_line += data[i:]
                    if len(self._size_line) > 1024:
                        self.cut = "the chunked body has a chunk size line longer than 1024 bytes"
                        self._finish()
                    return
                if self._size_line:
                    line, self._size_line = self._size_line + data[i:j], b""
                else:
                    line = data[i:j]
                i = j + 1
                try:
                    size = int(line.split(b";", 1)[0], 16)  # int() ignores the whitespace around it
                except ValueError:
                    self.cut = "the chunked body has a bad chunk size: %s" % one_line(line.decode("latin-1"), 60)
                    self._finish()
                    return
                if size == 0:
                    self._complete()  # the last chunk; trailers are of no use here
                    return
                self._remaining = size
                self._chunk_state = DATA

    def _complete(self) -> None:
        self.body_complete = True
        if self._partial:
            partial, self._partial = self._partial, b""
            self._feed([partial], time.monotonic())
        self._finish()
        if self._release_on_end and not self.closed:
            self._release_on_end = False
            if self._drain_timer is not None:
                self._drain_timer.cancel()
                self._drain_timer = None
            self.parser = None
            self.feeder.put_idle(self)

    def _content(self, piece: bytes, t: float) -> None:
        if not piece or self.done.done():
            return
        if self.status != 200:
            room = ERROR_BODY_LIMIT - len(self.error_body)
            self.error_body += piece[:room]
            if len(self.error_body) >= ERROR_BODY_LIMIT:
                self._keep = False
                self._finish()
            return
        if self._partial:
            piece = self._partial + piece
            self._partial = b""
        elif piece.startswith(b"data: {") and piece.endswith(b"}\n\n") and piece.count(b"\n") == 2:
            parser = self.parser
            if parser is not None:  # one whole event, as most chunks are: the parser's one-step path
                parser.feed_event(piece[6:-2], t)
                if parser.saw_done or parser.error is not None:
                    if parser.error is not None:
                        self._keep = False
                    self._finish()
            return
        # bytes.splitlines ends lines at LF, CRLF and CR: exactly the SSE spec's line ends
        lines = piece.splitlines(True)
        if not lines[-1].endswith(b"\n"):  # no line end yet, or a CR that may be the first half of a CRLF
            self._partial = lines.pop()
        if lines:
            self._feed(lines, t)


class Tracker:
    """What a request tells its runner: `opened(protocol)` once connected, `closed(protocol)` when over."""

    def opened(self, protocol: StreamProtocol) -> None:
        pass

    def closed(self, protocol: StreamProtocol) -> None:
        pass


async def stream_request_async(endpoint: Endpoint, spec: RequestSpec, workload: WorkloadConfig, feeder: Feeder,
                               tracker: Optional[Tracker] = None, defer_gaps: bool = False) -> Dict[str, Any]:
    """Send one streamed request and time its tokens, on a kept-alive connection to the server when one is
    idle (a new one when none is, or when the server closed the reused one before answering), from the
    moment the request's bytes are handed to the socket (a new connection's setup is not in its TTFT).

    A stream succeeded when it ended with [DONE], or after a finish_reason however the body then ended
    (TGI before 2.2 and llama.cpp forks send no [DONE]); it failed when the body ended before either, when
    the connection broke before either, or when the engine reported an error in it.

    `defer_gaps`: `itl_s` is left None and `parser` given instead, for a caller that computes the gaps
    (parser.gaps()) when it writes the event."""
    parser = StreamParser()
    request = endpoint.request_bytes(endpoint.request_body(spec, workload))
    key = (endpoint.host, endpoint.port, endpoint.https)
    protocol = None  # type: Optional[StreamProtocol]
    error = None  # type: Optional[str]
    connection_lost = False
    t_start = now()
    m_start = time.monotonic()
    while True:
        protocol = feeder.take_idle(key)
        reused = protocol is not None
        if protocol is None:
            try:
                _, protocol = await asyncio.wait_for(_connect(endpoint, feeder, key), REQUEST_CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as e:
                error = describe_request_error(e, endpoint)
                connection_lost = isinstance(e, ConnectionError)  # refused or reset: is the server still there?
                protocol = None
                break
        protocol.begin(parser)
        if tracker is not None:
            tracker.opened(protocol)
        try:
            t_start = now()
            m_start = time.monotonic()
            protocol.transport.write(request)  # type: ignore[union-attr]
            await _wait_out(protocol)
        finally:
            if tracker is not None:
                tracker.closed(protocol)
        if reused and not protocol.received and protocol.closed and not protocol.aborted:
            continue  # the server had closed the idle connection (its keep-alive timeout): a new one
        error, connection_lost = _outcome(protocol, endpoint)
        break
    latency = time.monotonic() - m_start
    result = _result(parser, spec, t_start, m_start, latency, error, connection_lost, protocol, not defer_gaps)
    if defer_gaps:
        result["parser"] = parser
    if protocol is not None:
        protocol.release()
    return result


def _connect(endpoint: Endpoint, feeder: Feeder, key: Tuple[str, int, bool]) -> Any:
    """A new connection: plain HTTP with kernel receive stamps where the kernel gives them, TLS (and any
    host without them) through asyncio's transport."""
    if feeder.kernel_stamps and not endpoint.https:
        return open_stamped(feeder.loop, lambda: StreamProtocol(feeder, key), endpoint.host, endpoint.port,
                            feeder.resolver, feeder.bridge, feeder.reads)
    return feeder.loop.create_connection(
        lambda: StreamProtocol(feeder, key), endpoint.host, endpoint.port,
        ssl=ssl.create_default_context() if endpoint.https else None,
        server_hostname=endpoint.host if endpoint.https else None)


async def _wait_out(protocol: StreamProtocol) -> None:
    """Until the response is over, or silent for REQUEST_READ_TIMEOUT_S: one timer per request, looking
    at the last read when it fires and set again for the rest of the silence allowed (no task, no timer per
    read)."""
    if protocol.done.done():
        return
    loop = protocol.feeder.loop
    timer = None  # type: Optional[asyncio.TimerHandle]

    def check() -> None:
        nonlocal timer
        silence = time.monotonic() - protocol.last_data
        if silence >= REQUEST_READ_TIMEOUT_S:
            protocol.abort("no data for %g s" % REQUEST_READ_TIMEOUT_S)
        else:
            timer = loop.call_later(REQUEST_READ_TIMEOUT_S - silence, check)

    timer = loop.call_later(REQUEST_READ_TIMEOUT_S, check)
    try:
        await protocol.done
    finally:
        timer.cancel()


def _outcome(protocol: StreamProtocol, endpoint: Endpoint) -> Tuple[Optional[str], bool]:
    """(error, connection_lost) of a response that is over."""
    parser = protocol.parser
    where = "%s:%d" % (endpoint.host, endpoint.port)
    if protocol.status is None:
        if protocol.aborted:
            return "the agent closed the connection (%s)" % protocol.aborted, False
        if protocol.cut:
            return protocol.cut, True
        if protocol.lost is not None:
            return describe_request_error(protocol.lost, endpoint), True
        return "the server closed the connection without answering (%s)" % where, True
    if protocol.status != 200:
        text = bytes(protocol.error_body).decode("utf-8", "replace").strip()
        try:
            message = engine_message(json.loads(text)) if text else ""
        except ValueError:
            message = one_line(text)
        return "HTTP %d: %s" % (protocol.status, message or protocol.reason or "(no body)"), False
    if (protocol.body_complete or protocol.closed_between_chunks) and not parser.finished:
        parser.end(protocol.last_data)
    if parser.error is not None:
        return parser.error, False
    if parser.saw_done:
        return None, False
    if parser.finish_reason is not None and (protocol.body_complete or protocol.closed_between_chunks):
        # Complete: every event came whole (TGI before 2.2 closes after its finish chunk, some servers
        # without the chunked body's last chunk). A chunk cut in half, or a reset, is not.
        return None, False
    if protocol.aborted:
        return "the agent closed the connection (%s)" % protocol.aborted, protocol.aborted.startswith("no data")
    if protocol.body_complete:
        error = "the stream ended before the response finished (no finish_reason, no [DONE])"
        if parser.other_lines and not parser.arrivals:
            error += "; the body is not an event stream (Content-Type %s): %s" % (
                protocol.headers.get("content-type", "none"), parser.first_other_line)
        return error, True
    if protocol.lost is not None:
        return describe_request_error(protocol.lost, endpoint), True
    return protocol.cut or "the connection ended before the response finished", True


def _result(parser: StreamParser, spec: RequestSpec, t_start: float, m_start: float, latency: float,
            error: Optional[str], connection_lost: bool, protocol: Optional[StreamProtocol],
            gaps: bool = True) -> Dict[str, Any]:
    timing = parser.result(m_start, gaps)  # TTFT, inter-token gaps and token counts: the parser's one definition
    status = protocol.status if protocol is not None and protocol.status != 200 else None
    return {
        "ok": error is None,
        "t_start": t_start,
        "t_end": t_start + latency,
        "prompt_tokens": timing["prompt_tokens"] if timing["prompt_tokens"] is not None else spec.prompt_tokens,
        "output_tokens": timing["output_tokens"],
        "tokens_from": timing["tokens_from"],
        "ttft_s": timing["ttft_s"],
        "latency_s": round(latency, 6),
        "itl_s": timing["itl_s"],
        "error": error,
        "http_status": status,
        "retry_after_s": parse_retry_after(protocol.headers.get("retry-after")) if status is not None else None,
        "connection_lost": connection_lost,
        "notes": ({"non_object_data": "the server sent %d data line(s) that are not a JSON object (%s); "
                                      "ignored" % (parser.ignored_count, ", ".join(parser.ignored))}
                  if parser.ignored else {}),
    }


def stream_request(endpoint: Endpoint, spec: RequestSpec, workload: WorkloadConfig,
                   track: Optional[Callable[[Any], None]] = None) -> Dict[str, Any]:
    """stream_request_async on a loop of its own, for one request outside a LoadRunner. `track` is
    accepted for callers of the former thread-per-request client and not used."""
    async def one() -> Dict[str, Any]:
        feeder = Feeder(asyncio.get_running_loop())
        try:
            return await stream_request_async(endpoint, spec, workload, feeder)
        finally:
            feeder.close_idle()

    return asyncio.run(one())
