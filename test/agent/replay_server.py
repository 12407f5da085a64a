"""Replays a recorded HTTP response (test/fixtures/sse/*.transcript) over loopback, byte for byte and with
its timing gaps: the status line and headers as recorded, each SSE event one write (one chunk when the
headers say chunked), and a TCP reset instead of an end when the transcript says `"end": "reset"`."""

import json
import os
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List

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


class ReplayServer:
    """Serves `transcript` to every POST on 127.0.0.1 (an ephemeral port); GET answers 200 with a model
    list, for the agent's readiness probe. `requests` keeps each request line and body."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.requests = []  # type: List[Dict[str, Any]]
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer._handle(self)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base_url = "http://127.0.0.1:%d/v1" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: socketserver.StreamRequestHandler) -> None:
        line = handler.rfile.readline().decode("latin-1").strip()
        if not line:
            return
        method, path = line.split(" ")[:2]
        length = 0
        while True:
            header = handler.rfile.readline().decode("latin-1").strip()
            if not header:
                break
            name, _, value = header.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
        raw = handler.rfile.read(length)
        self.requests.append({"method": method, "path": path, "body": json.loads(raw) if raw else None})
        sock = handler.connection
        try:
            if method != "POST":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(MODELS_BODY), MODELS_BODY))
            else:
                self._replay(sock)
                if self.transcript.reset:
                    # SO_LINGER 0: close() sends a TCP RST instead of a FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _replay(self, sock: socket.socket) -> None:
        transcript = self.transcript
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each write leaves when it is written
        sock.sendall(transcript.head)
        for gap, write in zip(transcript.gaps, transcript.writes):
            time.sleep(gap)
            sock.sendall(b"%x\r\n%s\r\n" % (len(write), write) if transcript.chunked else write)
        if transcript.chunked and not transcript.reset:
            sock.sendall(b"0\r\n\r\n")
