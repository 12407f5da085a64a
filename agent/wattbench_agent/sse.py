"""Reading an OpenAI-compatible server-sent-event stream: what each engine's chunks say (text, usage,
finish, errors), independent of how the bytes were received."""

import json
import time
from typing import Any, Dict, List, Optional


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


FAILED_FINISH_REASONS = ("abort", "error")  # vLLM: an aborted or failed request; SGLang: {"type": "abort"}


class StreamParser:
    """Reads an OpenAI-compatible server-sent-event stream line by line, as the SSE spec parses it: LF or
    CRLF line ends, `field: value` with the one space after the colon optional, `:` comment lines
    (keep-alives), `event:`, `id:` and `retry:` fields, data spread over several `data:` lines of one
    event. Each event's data is handled as soon as it is complete JSON (a timestamp per chunk, not per
    blank line); `[DONE]` ends the stream. An engine error inside the stream (`data: {"error": ...}`, an
    `event: error`, llama.cpp's `error:` field, finish_reason "abort"/"error") ends it with `error` set.

    After the stream: `arrivals` (monotonic times of chunks that carried text), `usage` (the last usage
    object, if any), `finish_reason`, `saw_done`, `error` (None when the engine reported none), `ignored`
    (data that was JSON but not an object, e.g. `data: null`: skipped, never fatal; the first few kept)."""

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
        self._event = ""
        self._data = []  # type: List[str]

    @property
    def finished(self) -> bool:
        """The stream is over: [DONE], or an error."""
        return self.saw_done or self.error is not None

    def feed(self, raw: bytes) -> None:
        """One line of the body, with its line end."""
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

    def end(self) -> None:
        """The body ended: handle an event the server did not close with a blank line."""
        self._dispatch()

    def _try_early(self, value: str) -> None:
        """Handle a first data line at once when it is complete on its own, for its arrival time."""
        if value.strip() == "[DONE]":
            self._data = []
            self.saw_done = True
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
            self.saw_done = True
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
        if payload.get("error"):
            if self.error is None:
                self.error = "server error: %s" % engine_message(payload)
            return
        usage = payload.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        text_arrived = False
        for choice in payload.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            if (choice.get("text") or delta.get("content") or delta.get("reasoning_content")
                    or delta.get("reasoning")):
                text_arrived = True
            finish = choice.get("finish_reason")
            if finish:
                self._finish(finish)
        if text_arrived:
            self.arrivals.append(time.monotonic())

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
