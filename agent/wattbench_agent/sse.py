"""Reading an OpenAI-compatible server-sent-event stream: what each engine's chunks say (text, usage,
finish, errors), independent of how the bytes were received."""

import json
import re
import time
from typing import Any, Dict, List, Optional, Tuple


ERROR_TEXT_LIMIT = 300  # characters of a server's error message kept in a request event


def one_line(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def engine_message(payload: Any) -> str:
    """The human part of an engine's error payload: OpenAI/vLLM/SGLang `{"error": {"message"}}`, TGI
    `{"error": "..."}`, llama.cpp `{"code", "message"}`, FastAPI `{"detail"}`; else the payload as JSON."""
    if isinstance(payload, str):
        return one_line(payload)
    if isinstance(payload, dict):
        for key in ("error", "message", "detail", "msg"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return one_line(value)
            if isinstance(value, (dict, list)) and value:
                return engine_message(value)
    if isinstance(payload, list) and payload:
        return engine_message(payload[0])
    return one_line(json.dumps(payload))


_raw_decode = json.JSONDecoder().raw_decode  # json.loads(str) without its argument checks and whitespace scans

# The fields that carry a chunk's output text, as a compact JSON key and the start of its string value.
_TEXT_KEYS = tuple((name, b'"%s":"' % name.encode()) for name in ("content", "text", "reasoning_content", "reasoning"))
# A JSON string's content that needs no decoding to compare or swap: no quote, no escape, no control byte.
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]+')

FAILED_FINISH_REASONS = ("abort", "error")  # vLLM: an aborted or failed request; SGLang: {"type": "abort"}


class StreamParser:
    """Reads an OpenAI-compatible server-sent-event stream line by line, as the SSE spec parses it: LF or
    CRLF line ends, `field: value` with the one space after the colon optional, `:` comment lines
    (keep-alives), `event:`, `id:` and `retry:` fields, data spread over several `data:` lines of one
    event. Each event's data is handled as soon as it is complete JSON (a timestamp per chunk, not per
    blank line); `[DONE]` ends the stream. An engine error inside the stream (`data: {"error": ...}`, an
    `event: error`, llama.cpp's `error:` field, finish_reason "abort"/"error", a `[DONE]` before anything
    was generated) ends it with `error` set. TGI's native `generate_stream` events (`{"token": {...},
    "generated_text": null, "details": null}`, one token each) are read too.

    A chunk counts as an arrival when it carries output: completion `text`, `delta.content`,
    `delta.reasoning_content` / `delta.reasoning` (a reasoning model's first tokens), `delta.tool_calls`, or
    a TGI token. How many tokens a chunk carried is known when the server counts as it goes: vLLM/SGLang
    `continuous_usage_stats` (cumulative `usage.completion_tokens` on every chunk), llama.cpp's per-chunk
    `timings.predicted_n`, TGI native (one token per event); else one token per chunk is assumed.

    After the stream: `arrivals` (monotonic times of chunks that carried output), `usage` (the last usage
    object, if any), `finish_reason`, `saw_done`, `error` (None when the engine reported none), `ignored`
    (data that was JSON but not an object, e.g. `data: null`: skipped, never fatal; the first few kept);
    `result(m_start)` sums it up for a request event."""

    def __init__(self) -> None:
        self.arrivals = []  # type: List[float]
        self.usage = None  # type: Optional[Dict[str, Any]]
        self.finish_reason = None  # type: Optional[str]
        self.saw_done = False
        self.error = None  # type: Optional[str]
        self.ignored = []  # type: List[str]
        self.ignored_count = 0
        self.other_lines = 0  # lines that are no SSE field at all (e.g. a JSON body where a stream was due)
        self.first_other_line = ""
        self.chunk_tokens = []  # type: List[Optional[int]]  # tokens each arrival carried; None: not reported
        self.native_tokens = None  # type: Optional[int]  # TGI native details.generated_tokens
        # arrivals that came in the same read as the one before: their gap is the read's, not the engine's
        # (the client read late, or the server wrote both at once)
        self.shared_reads = 0
        self._event = ""
        self._data = []  # type: List[str]
        self._now = 0.0
        self._counted = {}  # type: Dict[str, int]  # the last cumulative count seen, per counter
        # A stream's plain chunks differ only in their text (same id, model, created, field order): the
        # bytes before and after the text of the last plain chunk parsed (_learn), so the next can be known
        # without its JSON (feed_event). None: nothing learned yet.
        self._template = None  # type: Optional[Tuple[bytes, bytes]]

    @property
    def first_shared(self) -> bool:
        """The first token came in the same read as the second: its stamp is the second's, so TTFT is late by
        a gap (unless the engine did send both at once)."""
        arrivals = self.arrivals
        return len(arrivals) > 1 and arrivals[1] == arrivals[0]

    @property
    def finished(self) -> bool:
        """The stream is over: [DONE], or an error."""
        return self.saw_done or self.error is not None

    def feed(self, raw: bytes, t: Optional[float] = None) -> None:
        """One line of the body, with its line end; `t`: when it was read (time.monotonic(); None: now)."""
        self._now = time.monotonic() if t is None else t
        # The two lines of nearly every event first, without the general path's decode and split: a blank
        # line (an event's end, most events being handled at their data line already) and a data line.
        if raw == b"\n" or raw == b"\r\n" or raw == b"\r":
            if self._data or self._event:
                self._dispatch()
            return
        if raw.startswith(b"data:"):
            value = raw[5:].decode("utf-8", "replace").rstrip("\r\n")  # "data:" is ASCII: decoded alike
            if value.startswith(" "):
                value = value[1:]
            self._data.append(value)
            if len(self._data) == 1:
                self._try_early(value)
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            self._dispatch()
            return
        if line.startswith(":"):
            return  # a comment: keep-alives, pings
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            if len(self._data) == 1:
                self._try_early(value)
        elif field == "event":
            self._event = value
        elif field == "error":
            # llama.cpp's server writes a streaming error as an `error:` field
            self._fail_with(value, "the server reported an error")
        elif field in ("id", "retry"):
            pass
        else:
            self.other_lines += 1
            if not self.first_other_line:
                self.first_other_line = one_line(line, 200)

    def feed_event(self, raw: bytes, t: float) -> None:
        """A whole event of one data line holding a JSON object, `raw` being what follows `data: ` up to its
        blank line (what nearly every chunk of every engine is): feed() of the data line and the blank line
        in one step. Anything else is left to feed().

        A chunk that is the stream's learned template with other plain text in its place (most chunks of a
        stream) is what _handle would make of it, an arrival and nothing more, without decoding its JSON."""
        if not self._data and not self._event:
            template = self._template
            if template is not None and raw.startswith(template[0]) and raw.endswith(template[1]):
                if _PLAIN.fullmatch(raw, len(template[0]), len(raw) - len(template[1])):
                    self._now = t
                    self._arrive(None)
                    return
            value = raw.decode("utf-8", "replace")
            try:
                payload, end = _raw_decode(value)
            except ValueError:
                payload, end = None, -1
            if end == len(value):
                self._now = t
                arrived = len(self.arrivals)
                self._handle(payload, value, "")
                if len(self.arrivals) > arrived and self.chunk_tokens[-1] is None:
                    self._learn(raw, payload)
                return
        self.feed(b"data: " + raw + b"\n", t)
        self.feed(b"\n", t)

    def end(self, t: Optional[float] = None) -> None:
        """The body ended: handle an event the server did not close with a blank line."""
        if t is not None:
            self._now = t
        self._dispatch()

    @property
    def ok_end(self) -> bool:
        """The stream ended in a recognised complete way: [DONE], or a finish_reason (TGI before 2.2 and
        llama.cpp forks send no [DONE]), and no error."""
        return self.error is None and (self.saw_done or self.finish_reason is not None)

    def result(self, m_start: float, gaps: bool = True) -> Dict[str, Any]:
        """What a request event takes from the stream, `m_start` being the monotonic time the request was
        sent; `itl_s` is `gaps()` (None with gaps=False: a caller that writes the event later computes
        them then, off the loop's busy moment)."""
        counted = sum(1 if tokens is None else tokens for tokens in self.chunk_tokens)
        itl = self.gaps() if gaps else None
        usage = self.usage or {}
        reported = whole_count(usage.get("completion_tokens"))
        if reported is None:
            reported = self.native_tokens
        error = self.error
        if error is None and not self.ok_end:
            error = "the stream ended before the response finished (no finish_reason, no [DONE])"
        return {
            "ttft_s": round(self.arrivals[0] - m_start, 6) if self.arrivals else None,
            "itl_s": itl,
            "output_tokens": reported if reported is not None else counted,
            "tokens_from": "usage" if reported is not None else "chunks",
            "prompt_tokens": whole_count(usage.get("prompt_tokens")),
            "error": error,
            "finish_reason": self.finish_reason,
            "saw_done": self.saw_done,
            "ok_end": self.ok_end,
        }

    def gaps(self) -> List[float]:
        """One inter-token gap per output token after the first: a chunk that carried k tokens (when the
        server said so) adds k gaps of (its arrival - the previous arrival) / k, and the first chunk's
        extra tokens add gaps of 0. So mean(itl_s) = (last arrival - first arrival) / (tokens - 1): GuideLLM's
        inter-token latency and vLLM benchmark_serving's TPOT; where each chunk carries one token the list
        is vLLM benchmark_serving's `itl` exactly (a gap per chunk)."""
        arrivals = self.arrivals
        if all(tokens == 1 or tokens is None for tokens in self.chunk_tokens):
            # one token a chunk (the usual stream): a gap per chunk, without the general loop's steps
            return [round(at - before, 6) for before, at in zip(arrivals, arrivals[1:])]
        itl = []  # type: List[float]
        previous = None  # type: Optional[float]
        for at, tokens in zip(arrivals, self.chunk_tokens):
            k = 1 if tokens is None else tokens
            if k <= 0:
                continue  # text without a new token (a detokenizer catching up): no token time of its own
            if previous is None:
                itl.extend([0.0] * (k - 1))
            else:
                itl.extend([round((at - previous) / k, 6)] * k)
            previous = at
        return itl

    def _learn(self, raw: bytes, payload: Dict[str, Any]) -> None:
        """Keep `raw` as the stream's template if it is a plain chunk: one choice whose one output field is
        a plain JSON string, written compactly, found once in `raw`, and nothing else _handle acts on (no
        usage, timings, finish_reason, error). Another chunk with these bytes around other plain text then
        parses to this payload with only that text changed: _handle would count it the same way. A chunk
        that is no template leaves the last one: a template stays true of any chunk it matches."""
        if payload.get("usage") is not None or payload.get("timings") is not None or payload.get("error"):
            return
        choices = payload.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        if choice.get("finish_reason") or delta.get("tool_calls"):
            return
        carriers = [(key, text) for key, text in ((key, (choice if name == "text" else delta).get(name))
                                                  for name, key in _TEXT_KEYS) if text]
        if len(carriers) != 1:
            return
        key, text = carriers[0]
        if not isinstance(text, str) or raw.count(key) != 1:
            return
        start = raw.find(key) + len(key)
        end = raw.find(b'"', start)
        if end > start and _PLAIN.fullmatch(raw, start, end) and raw[start:end].decode("utf-8", "replace") == text:
            self._template = (raw[:start], raw[end:])

    def _try_early(self, value: str) -> None:
        """Handle a first data line at once when it is complete on its own, for its arrival time."""
        if value.startswith("{"):  # a JSON object (what engines send): cannot be [DONE]
            try:
                payload, end = _raw_decode(value)
            except ValueError:
                return
            if end != len(value) and value[end:].strip():
                return  # more after the object: not JSON on its own (more data lines may make it so)
            self._data = []
            self._handle(payload, value, self._event)
            return
        if value.strip() == "[DONE]":
            self._data = []
            self._done()
            return
        try:
            payload = json.loads(value)
        except ValueError:
            return  # more data lines may follow before the blank line
        self._data = []
        self._handle(payload, value, self._event)

    def _dispatch(self) -> None:
        event, self._event = self._event, ""
        if not self._data:
            return
        text, self._data = "\n".join(self._data), []
        if text.strip() == "[DONE]":
            self._done()
            return
        try:
            payload = json.loads(text)
        except ValueError:
            if event == "error":
                self._fail_with(text, "the server reported an error")
            else:
                self.error = "the server sent data that is not JSON: %s" % one_line(text, 200)
            return
        self._handle(payload, text, event)

    def _done(self) -> None:
        self.saw_done = True
        if not self.arrivals and self.finish_reason is None and self.error is None:
            self.error = "the server ended the stream ([DONE]) before generating anything"

    def _fail_with(self, text: str, what: str) -> None:
        try:
            message = engine_message(json.loads(text))
        except ValueError:
            message = one_line(text)
        if self.error is None:
            self.error = "%s: %s" % (what, message) if message else what

    def _handle(self, payload: Any, text: str, event: str) -> None:
        if event == "error":
            self._fail_with(text, "the server reported an error")
            return
        if not isinstance(payload, dict):
            self.ignored_count += 1
            if len(self.ignored) < 3:
                self.ignored.append(one_line(text, 60))
            return
        get = payload.get
        if get("error"):
            if self.error is None:
                self.error = "server error: %s" % engine_message(payload)
            return
        if isinstance(get("token"), dict):
            self._handle_tgi_native(payload)
            return
        usage = get("usage")
        usage = usage if isinstance(usage, dict) else {}
        if usage:
            self.usage = usage
        arrived = False
        choices = get("choices")
        for choice in choices or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            if (choice.get("text") or delta.get("content") or delta.get("reasoning_content")
                    or delta.get("reasoning") or delta.get("tool_calls")):
                arrived = True
            finish = choice.get("finish_reason")
            if finish:
                self._finish(finish)
        timings = get("timings")
        # which counter says how many tokens this chunk carried: usage on every chunk (continuous usage
        # stats) or llama.cpp's timings; a usage report only at the end counts for no chunk
        tokens = self._new_tokens("usage", usage.get("completion_tokens")) if choices and usage else None
        if tokens is None and isinstance(timings, dict):
            tokens = self._new_tokens("timings", timings.get("predicted_n"))
        if arrived:
            self._arrive(tokens)

    def _arrive(self, tokens: Optional[int]) -> None:
        """A token-carrying chunk now (`tokens`: how many its counter says, None: one chunk's worth)."""
        if self.arrivals and self.arrivals[-1] == self._now:
            self.shared_reads += 1
        self.arrivals.append(self._now)
        self.chunk_tokens.append(tokens)

    def _new_tokens(self, counter: str, cumulative: Any) -> Optional[int]:
        """Tokens since this counter's last report (None: no report in this chunk)."""
        count = whole_count(cumulative)
        if count is None:
            return None
        before = self._counted.get(counter)
        self._counted[counter] = count
        if before is None and self.arrivals:
            return None  # a count first seen late (TGI's usage on its last chunk) is a total, not a step
        return max(0, count - (before or 0))

    def _handle_tgi_native(self, payload: Dict[str, Any]) -> None:
        """TGI `generate_stream`: one event per token; the last has `generated_text` (and `details`, with
        finish_reason and generated_tokens, when the request asked for details)."""
        self._arrive(1)
        details = payload.get("details")
        details = details if isinstance(details, dict) else {}
        generated = whole_count(details.get("generated_tokens"))
        if generated is not None:
            self.native_tokens = generated
        if details.get("finish_reason"):
            self._finish(details["finish_reason"])
        elif payload.get("generated_text") is not None:
            self._finish("generated_text")  # the last event, without details: TGI names no reason

    def _finish(self, finish: Any) -> None:
        message = ""
        if isinstance(finish, dict):  # SGLang's own form: {"type": "abort", "message": ...}
            message = engine_message(finish.get("message")) if finish.get("message") else ""
            finish = finish.get("type") or json.dumps(finish)
        reason = str(finish)
        self.finish_reason = reason
        if reason in FAILED_FINISH_REASONS and self.error is None:
            self.error = "the server ended the response with finish_reason %r%s" % (
                reason, ": %s" % message if message else "")


def whole_count(value: Any) -> Optional[int]:
    """A token count from a usage report: a whole number >= 0, else None (not coerced)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None
