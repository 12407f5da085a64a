"""sim-server: a stand-in OpenAI-compatible LLM server that drives the simulated GPUs; sim-truth: their
exact energy over a time window."""

import argparse
import collections
import http.server
import json
import os
import queue
import random
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .job import JobError, parse_sim_profile
from .prompts import WORDS
from .telemetry.sim import SimHardware, SimPowerLog
from .util import default_sim_dir, read_json_file
from .version import AGENT_VERSION


SIM_MAX_BATCH = 256  # like vLLM's default max_num_seqs


class SimSequence:
    """One request inside the simulated engine; the HTTP handler reads its tokens from `out`."""

    def __init__(self, number: int, prompt_tokens: int, target_tokens: int) -> None:
        self.number = number
        self.prompt_tokens = prompt_tokens
        self.target_tokens = target_tokens
        self.generated = 0
        self.cancelled = False  # the client went away
        self.out = queue.Queue()  # type: queue.Queue


class SimEngine(threading.Thread):
    """Continuous-batching scheduler timed by the SimProfile (docs/protocol.md), one step at a time:
    a prefill step of everything waiting when the batch has room, else a decode step of the running
    batch. Each step sets the simulated GPUs' power in the sim directory; a power limit below the
    demanded power caps the power and stretches the step."""

    def __init__(self, profile: Dict[str, Any], hardware: SimHardware, seed: int) -> None:
        super().__init__(name="sim-engine", daemon=True)
        self.profile = profile
        self.hardware = hardware
        self.gpu = profile["gpu"]
        self._cond = threading.Condition()
        self._waiting = collections.deque()  # type: collections.deque
        self._running = []  # type: List[SimSequence]
        self._stopping = False
        self._lengths = random.Random(seed)  # output lengths when not ignore_eos
        self._noise = random.Random(profile["noise"]["seed"])
        self._last_power = None  # type: Optional[Tuple[float, List[float]]]
        self._count = 0

    def submit(self, prompt_tokens: int, max_tokens: int, ignore_eos: bool) -> SimSequence:
        with self._cond:
            target = max_tokens if ignore_eos else self._lengths.randint(1, max_tokens)
            self._count += 1
            sequence = SimSequence(self._count, max(1, prompt_tokens), target)
            self._waiting.append(sequence)
            self._cond.notify()
            return sequence

    def _set_power(self, util: float) -> float:
        """Called with _cond held. Records the GPUs' power for utilisation `util`; returns how much the
        power limits stretch a step (1.0 when no limit bites)."""
        idle, tdp = self.gpu["idle_w"], self.gpu["tdp_w"]
        demand = idle + util * (tdp - idle)
        limits = self.hardware.limits()
        powers = [min(demand, limit) for limit in limits]
        if self._last_power != (util, powers):
            self.hardware.append_power(util, powers)
            self._last_power = (util, powers)
        tightest = min(limits)
        if tightest >= demand:
            return 1.0
        # The GPUs run in lock-step (tensor parallel): the most tightly capped one sets the pace.
        return ((demand - idle) / max(tightest - idle, 1e-6)) ** self.profile["cap"]["time_exponent"]

    def _next_step(self) -> Optional[Tuple[str, List[SimSequence], float, float]]:
        """(kind, sequences, uncapped duration, utilisation) of the next step, or None when idle."""
        self._waiting = collections.deque(s for s in self._waiting if not s.cancelled)
        self._running = [s for s in self._running if not s.cancelled]
        if self._waiting and len(self._running) < SIM_MAX_BATCH:
            room = SIM_MAX_BATCH - len(self._running)
            batch = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            prefill = self.profile["prefill"]
            tokens = sum(s.prompt_tokens for s in batch)
            return "prefill", batch, prefill["fixed_s"] + tokens * prefill["s_per_token"], prefill["util"]
        if self._running:
            decode = self.profile["decode"]
            size = len(self._running)
            context = sum(s.prompt_tokens + s.generated for s in self._running)
            duration = decode["fixed_s"] + size * decode["s_per_seq"] + context * decode["s_per_ctx_token"]
            util = min(decode["util_max"], decode["util_base"] + decode["util_per_seq"] * size)
            return "decode", list(self._running), duration, util
        return None

    def run(self) -> None:
        while True:
            with self._cond:
                step = self._next_step()
                while step is None and not self._stopping:
                    self._set_power(0.0)  # nothing queued: idle power, no steps
                    self._cond.wait()
                    step = self._next_step()
                if self._stopping:
                    return
                kind, sequences, duration, util = step
                duration *= self._set_power(util)
                start = time.monotonic()
            rel_std = self.profile["noise"]["rel_std"]
            if rel_std > 0:
                duration *= max(0.0, 1.0 + self._noise.gauss(0.0, rel_std))
            remaining = start + duration - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            with self._cond:
                if kind == "prefill":
                    self._running.extend(sequences)  # a prefill step also yields each first token
                for sequence in sequences:
                    if sequence.cancelled:
                        continue
                    sequence.generated += 1
                    sequence.out.put(1)
                    if sequence.generated >= sequence.target_tokens:
                        sequence.out.put(None)
                        self._running.remove(sequence)

    def shutdown(self) -> None:
        """Stop stepping and leave the simulated GPUs idle (called on SIGTERM)."""
        with self._cond:
            self._stopping = True
            idle = self.gpu["idle_w"]
            self.hardware.append_power(0.0, [min(idle, limit) for limit in self.hardware.limits()])
            self._cond.notify_all()


def _count_words(value: Any) -> int:
    """Prompt length as the simulated server counts it: whitespace-separated words."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)  # a prompt given as token ids
        return sum(_count_words(v) for v in value)
    if isinstance(value, dict):
        return _count_words(value.get("content") if "content" in value else value.get("text"))
    return 0


class SimHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    engine = None  # type: SimEngine
    model_name = "sim-model"


class SimHandler(http.server.BaseHTTPRequestHandler):
    server_version = "wattbench-sim/" + AGENT_VERSION
    protocol_version = "HTTP/1.0"  # one request per connection; a streamed body ends when the socket closes
    server = None  # type: SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: it would grow server.log by a line per request

    def _send_json(self, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{
                "id": self.server.model_name, "object": "model", "created": int(time.time()),
                "owned_by": "wattbench-sim"}]})
        elif path in ("/health", "/v1/health"):
            self._send_json(200, {"status": "ok", "simulated": True})
        else:
            self._error(404, "not found: %s" % self.path)

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/completions", "/v1/chat/completions"):
            self._error(404, "not found: %s" % self.path)
            return
        chat = path.endswith("/chat/completions")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object")
        except ValueError as e:
            self._error(400, "invalid JSON body: %s" % e)
            return
        prompt_tokens = _count_words(request.get("messages") if chat else request.get("prompt"))
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or (256 if chat else 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            self._error(400, "max_tokens must be a positive integer")
            return
        sequence = self.server.engine.submit(prompt_tokens, max_tokens, bool(request.get("ignore_eos")))
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            self._stream(sequence, chat, max_tokens, include_usage)
        else:
            self._complete(sequence, chat, max_tokens)

    def _word(self, sequence: SimSequence, position: int) -> str:
        return " " + WORDS[(sequence.number * 7 + position * 13) % len(WORDS)]

    def _tokens(self, sequence: SimSequence) -> Iterator[int]:
        position = 0
        while True:
            item = sequence.out.get()
            if item is None:
                return
            yield position
            position += 1

    def _usage(self, sequence: SimSequence) -> Dict[str, int]:
        return {"prompt_tokens": sequence.prompt_tokens, "completion_tokens": sequence.generated,
                "total_tokens": sequence.prompt_tokens + sequence.generated}

    def _stream(self, sequence: SimSequence, chat: bool, max_tokens: int, include_usage: bool) -> None:
        ident = "%s-sim-%d" % ("chatcmpl" if chat else "cmpl", sequence.number)
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        model = self.server.model_name

        def chunk(choices: List[Dict[str, Any]], usage: Optional[Dict[str, int]] = None) -> bytes:
            body = {"id": ident, "object": obj, "created": created, "model": model,
                    "choices": choices}  # type: Dict[str, Any]
            if usage is not None:
                body["usage"] = usage
            return ("data: %s\n\n" % json.dumps(body)).encode("utf-8")

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            if chat:
                self.wfile.write(chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]))
            for position in self._tokens(sequence):
                word = self._word(sequence, position)
                choice = ({"index": 0, "delta": {"content": word}, "finish_reason": None} if chat
                          else {"index": 0, "text": word, "logprobs": None, "finish_reason": None})
                self.wfile.write(chunk([choice]))
                self.wfile.flush()
            finish = "length" if sequence.generated >= max_tokens else "stop"
            final = ({"index": 0, "delta": {}, "finish_reason": finish} if chat
                     else {"index": 0, "text": "", "logprobs": None, "finish_reason": finish})
            self.wfile.write(chunk([final]))
            if include_usage:
                self.wfile.write(chunk([], self._usage(sequence)))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (OSError, ValueError):
            sequence.cancelled = True  # the client hung up: the engine drops the sequence

    def _complete(self, sequence: SimSequence, chat: bool, max_tokens: int) -> None:
        text = "".join(self._word(sequence, position) for position in self._tokens(sequence))
        finish = "length" if sequence.generated >= max_tokens else "stop"
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        try:
            self._send_json(200, {"id": "cmpl-sim-%d" % sequence.number,
                                  "object": "chat.completion" if chat else "text_completion",
                                  "created": int(time.time()), "model": self.server.model_name,
                                  "choices": [choice], "usage": self._usage(sequence)})
        except OSError:
            pass


def cmd_sim_server(args: argparse.Namespace) -> int:
    try:
        profile = parse_sim_profile(read_json_file(args.profile), "profile")
    except (OSError, ValueError, JobError) as e:
        print("sim-server: bad profile %s: %s" % (args.profile, e), file=sys.stderr)
        return 2
    hardware = SimHardware(os.path.abspath(args.sim_dir or default_sim_dir()), profile)
    engine = SimEngine(profile, hardware, args.seed)
    try:
        server = SimHTTPServer((args.host, args.port), SimHandler)
    except OSError as e:
        print("sim-server: cannot listen on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 2
    server.engine = engine
    server.model_name = args.model
    engine.start()

    def on_signal(signum: int, frame: Any) -> None:
        engine.shutdown()
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gpu = profile["gpu"]
    print("wattbench sim-server %s: SIMULATED OpenAI-compatible LLM server (no model, no GPU) on "
          "http://%s:%d/v1, model %r, %d x %s, sim dir %s"
          % (AGENT_VERSION, args.host, server.server_address[1], args.model, gpu["count"], gpu["name"],
             hardware.dir), flush=True)
    server.serve_forever(poll_interval=0.5)
    return 0


def cmd_sim_truth(args: argparse.Namespace) -> int:
    """Ground truth: the simulated GPUs' energy over [from, to], from the same arithmetic as the counter."""
    path = os.path.join(args.sim_dir or default_sim_dir(), "power.log")
    try:
        log = SimPowerLog(path, keep_history=True)
    except OSError as e:
        print("sim-truth: %s" % e, file=sys.stderr)
        return 2
    log.refresh()
    start, end = log.energy_at(args.t_from), log.energy_at(args.t_to)
    print(json.dumps({"from": args.t_from, "to": args.t_to, "gpus": [
        {"i": i, "energy_j": end[i] - start[i], "e_from_j": start[i], "e_to_j": end[i]}
        for i in range(len(start))]}))
    return 0
