"""Replays a recorded HTTP response (test/fixtures/sse/*.transcript) over loopback, byte for byte and with
its timing gaps: the status line and headers as recorded, each SSE event one write (one chunk when the
headers say chunked), and a TCP reset instead of an end when the transcript says `"end": "reset"`."""

import http.client
import json
import os
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from .helpers import serve_on_loopback

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "sse")


@dataclass
class Transcript:
    name: str
    header: Dict[str, Any]
    head: bytes  # status line and headers, through the blank line
    body: bytes  # what the application wrote, before any chunked framing
    writes: List[bytes]  # the body cut into the writes that gaps_s times
    gaps: List[float]  # seconds before each write

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def header_value(self, name: str) -> str:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return ""

    @property
    def chunked(self) -> bool:
        return "chunked" in self.header_value("Transfer-Encoding").lower()

    @property
    def reset(self) -> bool:
        return self.header.get("end") == "reset"


def split_events(body: bytes) -> List[bytes]:
    """The body cut after each blank line (LF or CRLF): one SSE event per piece, its line ends kept."""
    pieces = []  # type: List[bytes]
    current = b""
    for line in body.splitlines(keepends=True):
        current += line
        if line in (b"\n", b"\r\n"):
            pieces.append(current)
            current = b""
    if current:
        pieces.append(current)
    return pieces


def load_transcript(name: str) -> Transcript:
    path = name if os.path.isabs(name) else os.path.join(FIXTURES, name)
    with open(path, "rb") as f:
        raw = f.read()
    first, _, response = raw.partition(b"\n")
    header = json.loads(first)
    cut = response.index(b"\r\n\r\n") + 4
    head, body = response[:cut], response[cut:]
    content_type = ""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-type:"):
            content_type = line.decode("latin-1").lower()
    writes = split_events(body) if "event-stream" in content_type else [body]
    gaps = [float(g) for g in header["gaps_s"]]
    if len(gaps) != len(writes):
        raise ValueError("%s: %d gaps for %d writes" % (name, len(gaps), len(writes)))
    return Transcript(os.path.basename(path), header, head, body, writes, gaps)


def all_transcripts() -> List[str]:
    return sorted(n for n in os.listdir(FIXTURES) if n.endswith(".transcript"))


MODELS_BODY = b'{"object": "list", "data": [{"id": "m", "object": "model"}]}'


@dataclass
class Route:
    status: int
    content_type: str
    body: bytes


def _json(status: int, obj: Any) -> Route:
    return Route(status, "application/json", json.dumps(obj).encode())


MODELS = Route(200, "application/json", MODELS_BODY)
EMPTY_200 = Route(200, "", b"")  # vLLM, SGLang, TGI, trtllm-serve: /health answers 200 with no body

# What each engine answers to a GET, once it can serve (the paths it has; any other GET is a 404), from the
# engines' docs: vLLM and SGLang `/health` (200, empty), `/v1/models`; TGI `/health` (200 once its warm-up
# generation passed); llama-server `/health` {"status": "ok"} (tools/server/README.md); Ollama `/` "Ollama is
# running" and `/api/version` {"version"} (docs/api.md); trtllm-serve `/health`, `/v1/models`; the OpenAI API
# `/v1/models` (which really wants an API key; the agent sends none, so this stand-in does not ask).
ENGINE_GETS = {
    "vllm": {"/health": EMPTY_200, "/v1/models": MODELS},
    "sglang": {"/health": EMPTY_200, "/v1/models": MODELS},
    "tgi": {"/health": EMPTY_200, "/v1/models": MODELS},
    "llama.cpp": {"/health": _json(200, {"status": "ok"}), "/v1/models": MODELS},
    "ollama": {"/": Route(200, "text/plain; charset=utf-8", b"Ollama is running"),
               "/api/version": _json(200, {"version": "0.12.3"}), "/v1/models": MODELS},
    "trtllm": {"/health": EMPTY_200, "/v1/models": MODELS},
    "openai": {"/v1/models": MODELS},
}  # type: Dict[str, Dict[str, Route]]

# llama-server while it loads the model: every route, /health included, answers this (tools/server/README.md)
LLAMACPP_LOADING = _json(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})

NOT_FOUND = _json(404, {"error": "not found"})
# The OpenAI API without a key (https://platform.openai.com/docs/api-reference/authentication; its error
# object as https://platform.openai.com/docs/guides/error-codes documents it), on every route
NO_API_KEY = _json(401, {"error": {"message": "You didn't provide an API key. You need to provide your API key in an "
                                              "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                                              "YOUR_KEY).", "type": "invalid_request_error", "param": None,
                                   "code": None}})


class ReplayServer:
    """Serves `transcript` to every POST on 127.0.0.1 (an ephemeral port); GET answers 200 with a model
    list, for the agent's readiness probe. `requests` keeps each request line and body.

    With `engine` (a key of ENGINE_GETS) it answers as that engine: GETs only on the engine's own paths
    (404 elsewhere), POSTs only on the transcript's endpoint (404 elsewhere), and, with `loading` > 0,
    that many requests answered LLAMACPP_LOADING first (llama-server loading its model). `transcripts`:
    further transcripts, one per POST in turn after the first (the last one repeats)."""

    def __init__(self, transcript: Transcript, engine: Optional[str] = None, loading: int = 0,
                 transcripts: Sequence[Transcript] = ()) -> None:
        self.transcript = transcript
        self.queue = [transcript] + list(transcripts)
        self.engine = engine
        self.loading = loading
        self.requests = []  # type: List[Dict[str, Any]]
        self._posts = 0
        self._lock = threading.Lock()
        self.server, self.port = serve_on_loopback(self._handle)
        self.base_url = "http://127.0.0.1:%d/v1" % self.port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: socketserver.StreamRequestHandler) -> None:
        line = handler.rfile.readline().decode("latin-1").strip()
        if not line:
            return
        method, path = line.split(" ")[:2]
        length = 0
        headers = {}  # type: Dict[str, str]
        while True:
            header = handler.rfile.readline().decode("latin-1").strip()
            if not header:
                break
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
        raw = handler.rfile.read(length)
        sock = handler.connection
        with self._lock:
            loading = self.loading > 0
            if loading:
                self.loading -= 1
            transcript = None  # type: Optional[Transcript]
            if method == "POST" and not loading and self._serves_post(path):
                transcript = self.queue[min(self._posts, len(self.queue) - 1)]
                self._posts += 1
            self.requests.append({"method": method, "path": path, "body": json.loads(raw) if raw else None,
                                  "headers": headers, "loading": loading,
                                  "transcript": transcript.name if transcript else None})
        try:
            if loading:
                self._answer(sock, LLAMACPP_LOADING)
            elif self.engine == "openai" and not headers.get("authorization", "").startswith("Bearer "):
                self._answer(sock, NO_API_KEY)
            elif method != "POST":
                self._answer(sock, self._get_route(path))
            elif transcript is None:
                self._answer(sock, NOT_FOUND)
            else:
                self._replay(sock, transcript)
                if transcript.reset:
                    # SO_LINGER 0: close() sends a TCP RST instead of a FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _get_route(self, path: str) -> Route:
        if self.engine is None:
            return MODELS
        return ENGINE_GETS[self.engine].get(path.split("?")[0], NOT_FOUND)

    def _serves_post(self, path: str) -> bool:
        """The transcript's endpoint ("POST /v1/chat/completions", or a full URL's path) is the one route."""
        if self.engine is None:
            return True
        wanted = urllib.parse.urlsplit(self.transcript.header["endpoint"].split(" ", 1)[1]).path
        return path.split("?")[0] == wanted

    @staticmethod
    def _answer(sock: socket.socket, route: Route) -> None:
        head = "HTTP/1.1 %d %s\r\n" % (route.status, http.client.responses.get(route.status, ""))
        if route.content_type:
            head += "Content-Type: %s\r\n" % route.content_type
        head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(route.body)
        sock.sendall(head.encode("latin-1") + route.body)

    @property
    def gets(self) -> List[str]:
        return [r["path"] for r in self.requests if r["method"] == "GET"]

    @property
    def posts(self) -> List[Dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def _replay(self, sock: socket.socket, transcript: Transcript) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each write leaves when it is written
        sock.sendall(transcript.head)
        for gap, write in zip(transcript.gaps, transcript.writes):
            time.sleep(gap)
            sock.sendall(b"%x\r\n%s\r\n" % (len(write), write) if transcript.chunked else write)
        if transcript.chunked and not transcript.reset:
            sock.sendall(b"0\r\n\r\n")
