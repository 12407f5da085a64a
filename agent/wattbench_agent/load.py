"""Load generation against an OpenAI-compatible server: streamed requests timed token by token, at a fixed
concurrency or a Poisson request rate."""

import collections
import datetime
import email.utils
import http.client
import json
import math
import random
import socket
import ssl
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .job import PointConfig, WorkloadConfig
from .prompts import RequestSpec
from .sse import ERROR_TEXT_LIMIT, StreamParser, one_line, whole_count, engine_message
from .util import now


REQUEST_CONNECT_TIMEOUT_S = 10.0


REQUEST_READ_TIMEOUT_S = 300.0  # longest silence tolerated inside one streamed response


PROBE_TIMEOUT_S = 2.0


THROTTLE_STATUSES = (429, 503)  # Too Many Requests, Service Unavailable: the server asks the client to wait


BACKOFF_BASE_S = 0.25  # without Retry-After: wait in [step/2, step], step = base * 2^(throttles in a row - 1)


BACKOFF_MAX_S = 8.0


RETRY_AFTER_MAX_S = 60.0  # a longer Retry-After is cut to this (and any wait to the point's time limit)


class Endpoint:
    def __init__(self, base_url: str, api: str, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.api = api
        self.model = model

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    @property
    def generate_path(self) -> str:
        return self.base_path + ("/chat/completions" if self.api == "chat" else "/completions")

    def probe(self) -> Tuple[bool, str]:
        """(ready, what went wrong): GET base_url/models, then /health on the root."""
        first_error = ""
        for path in (self.base_path + "/models", "/health"):
            conn = self.connection(PROBE_TIMEOUT_S)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return True, ""
                error = "GET %s answered HTTP %d" % (path, response.status)
            except (OSError, http.client.HTTPException) as e:
                error = "GET %s: %s" % (path, describe_request_error(e, self))
            finally:
                conn.close()
            first_error = first_error or error
        return False, first_error


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
    if isinstance(error, socket.timeout):
        return "timed out (%s)" % where
    if isinstance(error, socket.gaierror):
        return "cannot resolve host %s" % endpoint.host
    return "%s: %s" % (type(error).__name__, error)


CONNECTION_ERRORS = (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead)


def stream_request(endpoint: Endpoint, spec: RequestSpec, workload: WorkloadConfig,
                   track: Callable[[Optional[socket.socket]], None]) -> Dict[str, Any]:
    """Send one streamed request and time its tokens. `track(sock)` registers the connection's socket so
    that another thread can abort the request by shutting it down; `track(None)` when done. (The socket,
    not the HTTPConnection: getresponse() hands the socket to the response and sets conn.sock = None.)

    A stream succeeded when it ended with [DONE], or at the end of the body after a finish_reason (TGI
    before 2.2 and llama.cpp forks send no [DONE]); it failed when the body ended before either, when the
    connection broke, or when the engine reported an error in it."""
    body = {"model": endpoint.model, "max_tokens": spec.max_tokens, "temperature": workload.temperature,
            "stream": True, "stream_options": {"include_usage": True}}  # type: Dict[str, Any]
    if endpoint.api == "chat":
        body["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        body["prompt"] = spec.prompt
    if workload.ignore_eos:
        body["ignore_eos"] = True  # a vLLM/SGLang extension; only sent when asked for
    parser = StreamParser()
    error = None  # type: Optional[str]
    connection_lost = False
    http_status = None  # type: Optional[int]
    retry_after = None  # type: Optional[float]
    t_start = now()
    m_start = time.monotonic()
    conn = endpoint.connection(REQUEST_CONNECT_TIMEOUT_S)
    try:
        conn.connect()
        track(conn.sock)
        conn.sock.settimeout(REQUEST_READ_TIMEOUT_S)
        conn.request("POST", endpoint.generate_path, body=json.dumps(body),
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        response = conn.getresponse()
        if response.status != 200:
            http_status = response.status
            retry_after = parse_retry_after(response.getheader("Retry-After"))
            text = response.read(4000).decode("utf-8", "replace").strip()
            try:
                message = engine_message(json.loads(text)) if text else ""
            except ValueError:
                message = one_line(text)
            error = "HTTP %d: %s" % (response.status, message or response.reason or "(no body)")
        else:
            for raw in response:
                parser.feed(raw)
                if parser.finished:
                    break
            else:
                parser.end()
            error = parser.error
            if error is None and not parser.saw_done and parser.finish_reason is None:
                error = "the stream ended before the response finished (no finish_reason, no [DONE])"
                if parser.other_lines and not parser.arrivals:
                    error += "; the body is not an event stream (Content-Type %s): %s" % (
                        response.getheader("Content-Type", "none"), parser.first_other_line)
                connection_lost = True
    except CONNECTION_ERRORS as e:
        error = describe_request_error(e, endpoint)
        connection_lost = True
    except (OSError, http.client.HTTPException, ValueError) as e:
        error = describe_request_error(e, endpoint)
    finally:
        conn.close()
        track(None)
    latency = time.monotonic() - m_start
    arrivals = parser.arrivals
    usage = parser.usage or {}
    completion_tokens = whole_count(usage.get("completion_tokens"))
    reported_prompt_tokens = whole_count(usage.get("prompt_tokens"))
    return {
        "ok": error is None,
        "t_start": t_start,
        "t_end": t_start + latency,
        "prompt_tokens": reported_prompt_tokens if reported_prompt_tokens is not None else spec.prompt_tokens,
        # without a usage report: the chunks that carried text, one token each only if the server
        # streams token by token (several per chunk with speculative decoding or a stream interval)
        "output_tokens": completion_tokens if completion_tokens is not None else len(arrivals),
        "tokens_from": "usage" if completion_tokens is not None else "chunks",
        "ttft_s": round(arrivals[0] - m_start, 6) if arrivals else None,
        "latency_s": round(latency, 6),
        "itl_s": [round(b - a, 6) for a, b in zip(arrivals, arrivals[1:])],
        "error": error,
        "http_status": http_status,
        "retry_after_s": retry_after,
        "connection_lost": connection_lost,
        "notes": ({"non_object_data": "the server sent %d data line(s) that are not a JSON object (%s); "
                                      "ignored" % (parser.ignored_count, ", ".join(parser.ignored))}
                  if parser.ignored else {}),
    }


@dataclass
class PointCounts:
    """A point's measured requests (warm-up ones are not counted), for its `point` end event."""
    requests: int = 0
    errors: int = 0
    http: bool = False  # LoadRunner sent them (a command workload reports its own requests)
    tokens_usage: int = 0  # successful requests whose output tokens came from the server's usage report
    tokens_chunks: int = 0  # ... and those counted by chunks
    throttled: int = 0  # failed with HTTP 429 or 503 (the server throttled, or was unavailable)

    def end_fields(self) -> Dict[str, Any]:
        """Fields of the `point` end event beyond requests and errors (docs/protocol.md)."""
        fields = {}  # type: Dict[str, Any]
        if self.http:
            fields["throttled"] = self.throttled
        if self.http and (self.tokens_usage or self.tokens_chunks):
            fields["tokens_from"] = ("mixed" if self.tokens_usage and self.tokens_chunks
                                     else "usage" if self.tokens_usage else "chunks")
        return fields


STOP_TEXT = {"cancelled": "cancelled", "timeout": "point time limit reached", "server": "the server died"}


class LoadRunner:
    """Sends requests to an OpenAI-compatible endpoint at a fixed concurrency or at a Poisson request
    rate, and writes a `request` event for each. Stops early on cancel, time limit or a dead server,
    aborting requests in flight (their events say why). `agent` is the run driving it (run.AgentRun, not
    imported here: the run imports this module): its `cancel` event, `events` writer, `server_dead()` and
    `check_server_after_failure()`."""

    def __init__(self, agent: Any, endpoint: Endpoint, point: PointConfig, repeat: int,
                 counts: PointCounts, deadline: Optional[float]) -> None:
        self.agent = agent
        self.endpoint = endpoint
        self.point = point
        self.workload = point.workload
        self.repeat = repeat
        self.counts = counts
        self.deadline = deadline
        self._lock = threading.Lock()
        self._active = set()  # type: set
        self._stop_reason = None  # type: Optional[str]
        self._deaths = []  # type: List[Tuple[str, BaseException, str]]
        self._internal_errors = 0
        self._noted = set()  # type: set
        self._hold_until = 0.0  # monotonic: no new request before this (the server said 429/503)
        self._throttles_in_row = 0
        self._jitter = random.Random(self.workload.seed * 7919 + repeat)

    def run(self, specs: List[RequestSpec], warmup: bool, first_index: int) -> Optional[str]:
        """Send `specs`; returns None when all were sent and answered, else why it stopped early."""
        self._stop_reason = None
        numbered = list(enumerate(specs, first_index))
        if self.workload.request_rate is not None and not warmup:
            self._run_at_rate(numbered, self.workload.request_rate)
        else:
            # Warm-up in rate mode runs a few at a time: it only has to wake the server up.
            concurrency = self.workload.concurrency or min(len(specs), 4)
            self._run_concurrent(numbered, concurrency, warmup)
        if not warmup and self.counts.errors:
            throttled = (", %d throttled (HTTP 429/503: the server refused them)" % self.counts.throttled
                         if self.counts.throttled else "")
            self.agent.events.emit("log", level="warn", source="agent",
                                   msg="point %s: %d of %d measured requests failed%s; the point's figures "
                                       "count only the successful ones"
                                       % (self.point.id, self.counts.errors, self.counts.requests, throttled))
        return self._stop_reason

    def inflight(self) -> int:
        """Requests sent and not yet answered, for the live view."""
        with self._lock:
            return len(self._active)

    def _check_stop(self) -> Optional[str]:
        if self.agent.cancel.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "timeout"
        if self.agent.server_dead():
            return "server"
        return None

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            active = list(self._active)
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the thread reading it sees the end of the stream
            except OSError:
                pass

    def _send_guarded(self, index: int, spec: RequestSpec, warmup: bool) -> None:
        """_send, never raising for a request: one that raised inside the agent becomes a failed request
        (`internal error ...`), the point's first such one an `error` event (where: load) with the
        traceback, so no request goes missing and its sender goes on. Only a failure to record even that
        escapes (to the sender's own guard)."""
        done = {"emitted": False}
        try:
            self._send(index, spec, warmup, done)
        except BaseException as e:  # noqa: B036 - whatever it is, it must not end the sender silently
            detail = traceback.format_exc()
            self._diag("request %d of point %s raised:\n%s" % (index, self.point.id, detail))
            if done["emitted"]:
                return
            message = "internal error in the load generator: %s: %s" % (type(e).__name__, e)
            with self._lock:
                self._internal_errors += 1
                first = self._internal_errors == 1
            if first:
                self._emit_error("request %d: %s; the request is counted as failed (later ones are in "
                                 "agent.log)" % (index, message), detail)
            t = now()
            self.agent.events.emit("request", point=self.point.id, repeat=self.repeat, i=index, warmup=warmup,
                                   ok=False, t_start=t, t_end=t, prompt_tokens=spec.prompt_tokens,
                                   output_tokens=0, tokens_from="chunks", ttft_s=None, latency_s=0.0, itl_s=[],
                                   error=message)
            self._count(warmup, ok=False)

    def _sender(self, body: Callable[[], None]) -> Callable[[], None]:
        """A sender thread's target: `body`, and if anything escapes it, a record for _supervise to report
        (and replace the sender) instead of a thread that vanishes with a traceback on stderr."""
        def run() -> None:
            try:
                body()
            except BaseException as e:  # noqa: B036
                with self._lock:
                    self._deaths.append((threading.current_thread().name, e, traceback.format_exc()))
        return run

    def _diag(self, message: str) -> None:
        diag = getattr(self.agent, "diag", None)
        if diag is not None:
            try:
                diag.write(message)
            except Exception:
                pass

    def _emit_error(self, message: str, detail: Optional[str] = None) -> None:
        fields = {"where": "load", "fatal": False, "point": self.point.id,
                  "message": message}  # type: Dict[str, Any]
        if detail:
            fields["detail"] = detail[-4000:]
        try:
            self.agent.events.emit("error", **fields)
        except Exception:
            self._diag("could not write an error event: %s\n%s" % (message, traceback.format_exc()))

    def _note(self, key: str, message: str) -> None:
        """A `log` warning, once per point and repeat for each kind of oddity."""
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        self.agent.events.emit("log", level="warn", source="agent",
                               msg="point %s: %s (noted once per point)" % (self.point.id, message))

    def _count(self, warmup: bool, ok: bool, tokens_from: Optional[str] = None,
               http_status: Optional[int] = None) -> None:
        if not warmup:
            with self._lock:
                self.counts.http = True
                self.counts.requests += 1
                if not ok:
                    self.counts.errors += 1
                    if http_status in THROTTLE_STATUSES:
                        self.counts.throttled += 1
                elif tokens_from == "usage":
                    self.counts.tokens_usage += 1
                elif tokens_from == "chunks":
                    self.counts.tokens_chunks += 1

    def _send(self, index: int, spec: RequestSpec, warmup: bool, done: Dict[str, bool]) -> None:
        holder = {}  # type: Dict[str, Any]

        def track(sock: Optional[socket.socket]) -> None:
            with self._lock:
                if sock is None:
                    self._active.discard(holder.get("sock"))
                else:
                    holder["sock"] = sock
                    self._active.add(sock)
                    if self._stop_reason is not None:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)  # connected just as the stop came
                        except OSError:
                            pass

        result = stream_request(self.endpoint, spec, self.workload, track)
        connection_lost = result.pop("connection_lost")
        retry_after = result.pop("retry_after_s")
        if result["http_status"] is None:
            result.pop("http_status")
        if result.get("http_status") in THROTTLE_STATUSES:
            self._throttled(result["http_status"], retry_after, result["error"])
        elif result["ok"]:
            with self._lock:
                self._throttles_in_row = 0
        for key, note in result.pop("notes", {}).items():
            self._note(key, note)
        if not result["ok"] and self._stop_reason:
            result["error"] = "aborted (%s): %s" % (STOP_TEXT[self._stop_reason], result["error"])
        elif connection_lost:
            self.agent.check_server_after_failure()
        error = result.pop("error")
        event = {"point": self.point.id, "repeat": self.repeat, "i": index, "warmup": warmup}
        event.update(result)
        if error is not None:
            event["error"] = error
        self.agent.events.emit("request", **event)
        done["emitted"] = True
        self._count(warmup, result["ok"], result["tokens_from"], result.get("http_status"))

    def _throttled(self, status: int, retry_after: Optional[float], error: str) -> None:
        """The server answered 429/503: hold new requests for its Retry-After (at most RETRY_AFTER_MAX_S),
        else back off exponentially with jitter. Answers that come while a hold is on do not lengthen the
        step (at concurrency N, N refusals at once are one throttle, not N)."""
        with self._lock:
            mono = time.monotonic()
            if retry_after is not None:
                delay = min(retry_after, RETRY_AFTER_MAX_S)
                how = "as its Retry-After says" + (" (cut from %g s)" % retry_after
                                                   if retry_after > RETRY_AFTER_MAX_S else "")
            else:
                if mono >= self._hold_until:
                    self._throttles_in_row += 1
                step = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (max(1, self._throttles_in_row) - 1))
                delay = self._jitter.uniform(step / 2, step)
                how = "exponential backoff with jitter (no Retry-After)"
            self._hold_until = max(self._hold_until, mono + delay)
        self._note("throttled", "the server throttles (%s): new requests wait %.2g s, %s, never past the "
                                "point's time limit; such requests count as failed"
                   % (one_line(error, 160), delay, how))

    def _wait_hold(self) -> None:
        """Before a new request: wait out a hold the server asked for. A cancel, the time limit or a dead
        server ends the wait (and stops the point)."""
        while self._stop_reason is None:
            with self._lock:
                remaining = self._hold_until - time.monotonic()
            if remaining <= 0:
                return
            reason = self._check_stop()
            if reason:
                self._stop(reason)
                return
            self.agent.cancel.wait(min(remaining, 0.05))

    def _supervise(self, threads: List[threading.Thread],
                   replace: Optional[Callable[[], Optional[threading.Thread]]] = None) -> None:
        # replace is None in request-rate mode: there each request has its own thread
        """Wait for the request threads; stop them at cancel, time limit or a dead server. A sender that
        died is reported (`error`, where: load) and, while work remains, `replace()` starts another."""
        while True:
            alive = any(t.is_alive() for t in threads)  # before taking deaths: a sender records, then ends
            for name, error, detail in self._take_deaths():
                thread = replace() if replace is not None and self._stop_reason is None else None
                if thread is not None:
                    threads.append(thread)
                    alive = True
                self._report_death(name, error, detail, thread is not None if replace is not None else None)
            if not alive:
                break
            reason = self._check_stop()
            if reason:
                self._stop(reason)
                break
            self.agent.cancel.wait(0.1)
        for t in threads:
            t.join(timeout=REQUEST_CONNECT_TIMEOUT_S + 5)
        for name, error, detail in self._take_deaths():
            self._report_death(name, error, detail, False if replace is not None else None)

    def _take_deaths(self) -> List[Tuple[str, BaseException, str]]:
        with self._lock:
            deaths, self._deaths = self._deaths, []
        return deaths

    def _report_death(self, name: str, error: BaseException, detail: str, replaced: Optional[bool]) -> None:
        """`replaced`: True/False for a concurrency sender, None for a request-rate request's own thread."""
        self._diag("load thread %s of point %s died:\n%s" % (name, self.point.id, detail))
        if replaced:
            what = "started another in its place, so the point keeps its concurrency"
        elif replaced is None:
            what = "its request has no event; the request rate is kept (each request has its own thread)"
        else:
            what = "no other was started (the point was stopping, or had nothing left to send)"
        self._emit_error("a load thread (%s) stopped on %s: %s; %s" % (name, type(error).__name__, error, what),
                         detail)

    def _run_concurrent(self, numbered: List[Tuple[int, RequestSpec]], concurrency: int, warmup: bool) -> None:
        pending = collections.deque(numbered)

        def work() -> None:
            while self._stop_reason is None:
                reason = self._check_stop()  # also here: a failed request may have just found the server dead
                if reason:
                    self._stop(reason)
                    return
                self._wait_hold()
                if self._stop_reason is not None:
                    return
                with self._lock:
                    if not pending:
                        return
                    index, spec = pending.popleft()
                self._send_guarded(index, spec, warmup)

        count = [0]

        def start() -> Optional[threading.Thread]:
            with self._lock:
                if not pending:
                    return None
            thread = threading.Thread(target=self._sender(work), name="load-%d" % count[0], daemon=True)
            count[0] += 1
            thread.start()
            return thread

        threads = [t for t in (start() for _ in range(min(concurrency, len(numbered)))) if t is not None]
        self._supervise(threads, start)

    def _run_at_rate(self, numbered: List[Tuple[int, RequestSpec]], rate: float) -> None:
        rng = random.Random(self.workload.seed * 1000003 + self.repeat)
        threads = []  # type: List[threading.Thread]
        next_arrival = time.monotonic()
        for index, spec in numbered:
            next_arrival += rng.expovariate(rate)
            while self._stop_reason is None:
                reason = self._check_stop()
                if reason:
                    self._stop(reason)
                    break
                with self._lock:
                    hold = self._hold_until
                if hold > next_arrival:
                    next_arrival = hold  # the server asked to wait: the arrivals go on from there
                remaining = next_arrival - time.monotonic()
                if remaining <= 0:
                    break
                self.agent.cancel.wait(min(remaining, 0.05))
            if self._stop_reason is not None:
                break
            for name, error, detail in self._take_deaths():
                self._report_death(name, error, detail, None)
            thread = threading.Thread(target=self._sender(lambda i=index, s=spec: self._send_guarded(i, s, False)),
                                      name="load-%d" % index, daemon=True)
            thread.start()
            threads = [t for t in threads if t.is_alive()] + [thread]
        self._supervise(threads)
