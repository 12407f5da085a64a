"""The engine's own metrics: the Prometheus text-format parser on real `/metrics` output of vLLM, SGLang,
llama.cpp and TGI-named metrics (test/fixtures/metrics/, sources in SOURCE.md), the scraper against a
loopback stand-in serving them, scrape failures that never fail the run, the readiness probe paths, and an
agent run whose events.ndjson carries `engine` events."""

import json
import math
import os
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from unittest import mock

from . import helpers
from .helpers import REPO, AgentTestCase, command_point, http_point

from wattbench_agent.metrics import Scraper, engine_values, parse_text, parse_value
from wattbench_agent.readiness import probe_paths, probe_target

FIXTURES = os.path.join(REPO, "test", "fixtures", "metrics")

# The presets' metric names (src/core/config/engines.ts), as the job carries them.
VLLM = {"running": ["vllm:num_requests_running"], "waiting": ["vllm:num_requests_waiting"],
        "kv_cache_usage": ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
        "preemptions_total": ["vllm:num_preemptions_total"]}
SGLANG = {"running": ["sglang:num_running_reqs"], "waiting": ["sglang:num_queue_reqs"],
          "kv_cache_usage": ["sglang:token_usage"]}
LLAMACPP = {"running": ["llamacpp:requests_processing"], "waiting": ["llamacpp:requests_deferred"],
            "kv_cache_usage": ["llamacpp:kv_cache_usage_ratio"]}
TGI = {"running": ["tgi_batch_current_size"], "waiting": ["tgi_queue_size"]}


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


class StandIn:
    """A loopback HTTP server like an engine's: `routes` maps a path to (status, body), answered with the
    Prometheus text content type; a path not there is 404. `hits` counts the GETs per path."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what prometheus_client and llama-server send

    def __init__(self, routes: Dict[str, Tuple[int, str]]) -> None:
        self.routes = dict(routes)
        self.hits = {}  # type: Dict[str, int]
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stand_in.lock:
                    stand_in.hits[self.path] = stand_in.hits.get(self.path, 0) + 1
                    status, body = stand_in.routes.get(self.path, (404, "not found"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", stand_in.CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, path: str, status: int, body: str) -> None:
        with self.lock:
            self.routes[path] = (status, body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Collector:
    def __init__(self) -> None:
        self.events = []  # type: List[Tuple[str, Dict[str, Any]]]

    def __call__(self, event_type: str, t: Optional[float] = None, **fields: Any) -> None:
        self.events.append((event_type, fields))

    def of(self, event_type: str) -> List[Dict[str, Any]]:
        return [f for kind, f in self.events if kind == event_type]


class ParserOnRealOutputTest(unittest.TestCase):
    def test_vllm_v0_names_labels_and_every_sample(self):
        result = parse_text(fixture("vllm-0.7-gpu-cache.prom"))
        self.assertEqual(result.bad_lines, [])
        # counted by hand: 4 process_* samples and 3 vllm:* samples; the trailing HELP/TYPE pair has none
        self.assertEqual([s.name for s in result.samples], [
            "process_start_time_seconds", "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
            "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc"])
        by_name = {s.name: s for s in result.samples}
        self.assertEqual(by_name["process_start_time_seconds"].value, 1742624005.57)
        self.assertEqual(by_name["process_max_fds"].value, 1048576.0)
        self.assertEqual(by_name["vllm:num_requests_running"].labels, {"model_name": "Qwen/Qwen2.5-Coder-32B-Instruct"})
        self.assertEqual(result.types["vllm:gpu_prefix_cache_queries_total"], "counter")
        self.assertEqual(engine_values(result.samples, VLLM),
                         {"running": 0.0, "waiting": 0.0, "kv_cache_usage": 0.0})

    def test_vllm_v1_renamed_kv_cache_metric_and_untyped_histogram_buckets(self):
        text = fixture("vllm-0.10-kv-cache.prom")
        result = parse_text(text)
        self.assertEqual(result.bad_lines, [])
        self.assertEqual(len(result.samples), 5)  # the 14 request_queue_time buckets (no TYPE line) left out
        values = engine_values(result.samples, VLLM, model="zai-org/GLM-4.5")
        self.assertEqual(values, {"kv_cache_usage": 9.75010481363281e-06})
        kv = [s for s in result.samples if s.name == "vllm:kv_cache_usage_perc"][0]
        self.assertEqual(kv.labels, {"engine": "0", "model_name": "zai-org/GLM-4.5"})
        buckets = [s for s in parse_text(text, histograms=True).samples if s.name.endswith("_bucket")]
        self.assertEqual([s.labels["le"] for s in buckets],
                         ["1.0", "1.5", "2.0", "2.5", "5.0", "10.0", "15.0", "20.0", "30.0", "40.0", "50.0",
                          "60.0", "120.0", "240.0"])
        self.assertTrue(all(s.value == 4.0 for s in buckets))

    def test_sglang_rank_labels(self):
        result = parse_text(fixture("sglang-0.5.1.prom"))
        self.assertEqual(result.bad_lines, [])
        self.assertEqual(len(result.samples), 4)
        running = result.samples[0]
        self.assertEqual(running.labels, {"engine_type": "unified", "model_name": "Qwen-32B", "pp_rank": "0",
                                          "tp_rank": "0"})
        self.assertEqual(result.samples[3].value, 0.8371284457403783)
        self.assertEqual(engine_values(result.samples, SGLANG, model="Qwen-32B"),
                         {"running": 1.0, "kv_cache_usage": 0.0})

    def test_llamacpp_has_no_kv_cache_gauge_any_more(self):
        result = parse_text(fixture("llamacpp-b4600.prom"))
        self.assertEqual([(s.name, s.labels, s.value) for s in result.samples],
                         [("llamacpp:requests_processing", {}, 0.0), ("llamacpp:requests_deferred", {}, 0.0)])
        self.assertEqual(engine_values(result.samples, LLAMACPP), {"running": 0.0, "waiting": 0.0})

    def test_tgi_names_and_typed_histogram(self):
        text = fixture("tgis-ibm-vllm.prom")
        result = parse_text(text)
        self.assertEqual([s.name for s in result.samples], ["tgi_queue_size", "tgi_batch_current_size"])
        self.assertEqual(result.types["tgi_batch_inference_duration"], "histogram")
        with_histograms = parse_text(text, histograms=True).samples
        self.assertEqual(len(with_histograms), 2 + 13)
        # a label value holding quotes of the other kind and braces is kept whole
        self.assertEqual(with_histograms[6].labels, {"le": "0.02", "method": "{'method': 'prefill'}"})
        self.assertEqual(with_histograms[6].value, 112.0)
        self.assertEqual(engine_values(result.samples, TGI), {"running": 0.0, "waiting": 0.0})


class ParserFormatTest(unittest.TestCase):
    """Cases of the exposition format (0.0.4) that the fixtures do not show."""

    def test_escapes_special_values_timestamps(self):
        text = ('# HELP m A "help" with \\\\ and \\n\n'
                '# TYPE m gauge\n'
                'm{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",} 1.5e3 1395066363000\n'
                'm{k="nan"} NaN\n'
                'm{k="inf"} +Inf\n'
                'm{k="neg"} -Inf\n'
                'm{} 7\n'
                '   \n'
                '# a comment line\n'
                'counter_total 3\n')
        result = parse_text(text)
        self.assertEqual(result.bad_lines, [])
        first = result.samples[0]
        self.assertEqual(first.labels, {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb"})
        self.assertEqual((first.value, first.timestamp_ms), (1500.0, 1395066363000))
        self.assertTrue(math.isnan(result.samples[1].value))
        self.assertEqual([s.value for s in result.samples[2:5]], [math.inf, -math.inf, 7.0])
        self.assertEqual(result.samples[4].labels, {})
        self.assertEqual(result.samples[5].name, "counter_total")

    def test_bad_lines_are_listed_and_the_rest_kept(self):
        text = "good 1\nbad{unclosed=\"x} 2\nno_value\n9starts_with_digit 1\ngood2{a=\"b\"} 2 notatime\nlast 3\n"
        result = parse_text(text)
        self.assertEqual([s.name for s in result.samples], ["good", "last"])
        self.assertEqual(result.bad_lines, [2, 3, 4, 5])

    def test_summary_and_histogram_series_are_left_out_unless_asked(self):
        text = ("# TYPE rpc summary\nrpc{quantile=\"0.5\"} 4\nrpc_sum 10\nrpc_count 3\n"
                "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 3\nlat_sum 1\nlat_count 3\nplain 1\n")
        self.assertEqual([s.name for s in parse_text(text).samples], ["plain"])
        self.assertEqual(len(parse_text(text, histograms=True).samples), 7)

    def test_values(self):
        self.assertEqual(parse_value("-1.5E-3"), -0.0015)
        self.assertEqual(parse_value(".5"), 0.5)
        for bad in ("1,5", "0x10", "", "one"):
            with self.assertRaises(ValueError):
                parse_value(bad)

    def test_sums_data_parallel_engines_once_per_tensor_parallel_group_and_this_model_only(self):
        text = ('vllm:num_requests_running{engine="0",model_name="m"} 3\n'
                'vllm:num_requests_running{engine="1",model_name="m"} 4\n'
                'vllm:num_requests_running{engine="0",model_name="other"} 50\n'
                'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2\n'
                'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6\n'
                'vllm:num_requests_waiting{engine="0",model_name="m"} NaN\n'
                'sglang:num_running_reqs{model_name="m",tp_rank="0"} 5\n'
                'sglang:num_running_reqs{model_name="m",tp_rank="1"} 5\n')
        samples = parse_text(text).samples
        self.assertEqual(engine_values(samples, VLLM, model="m"), {"running": 7.0, "kv_cache_usage": 0.4})
        self.assertEqual(engine_values(samples, VLLM, model="absent")["running"], 57.0)
        self.assertEqual(engine_values(samples, SGLANG, model="m"), {"running": 5.0})


class ScraperTest(unittest.TestCase):
    def setUp(self) -> None:
        self.stand_in = StandIn({"/metrics": (200, fixture("sglang-0.5.1.prom"))})
        self.addCleanup(self.stand_in.close)

    def test_engine_events_from_a_real_exposition(self):
        emit = Collector()
        scraper = Scraper(self.stand_in.url + "/metrics", SGLANG, 0.1, emit, lambda: "p1", model="Qwen-32B")
        self.assertEqual(scraper.interval_s, 0.5)  # never faster than every 0.5 s
        for _ in range(3):
            self.assertEqual(scraper.scrape_once(), {"running": 1.0, "kv_cache_usage": 0.0})
        self.assertEqual(emit.of("engine"), [{"values": {"running": 1.0, "kv_cache_usage": 0.0}, "point": "p1"}] * 3)
        self.assertEqual(emit.of("log"), [])
        self.assertEqual(self.stand_in.hits["/metrics"], 3)

    def test_failures_are_said_once_and_retried(self):
        emit = Collector()
        self.stand_in.set("/metrics", 500, "boom")
        scraper = Scraper(self.stand_in.url + "/metrics", SGLANG, 0.5, emit, lambda: None)
        for _ in range(3):
            self.assertIsNone(scraper.scrape_once())
        warnings = emit.of("log")
        self.assertEqual(len(warnings), 1, warnings)
        self.assertEqual(warnings[0]["level"], "warn")
        self.assertIn("HTTP 500", warnings[0]["msg"])
        self.stand_in.set("/metrics", 200, fixture("sglang-0.5.1.prom"))
        self.assertEqual(scraper.scrape_once(), {"running": 1.0, "kv_cache_usage": 0.0})
        self.assertEqual([e["level"] for e in emit.of("log")], ["warn", "info"])
        self.assertEqual(emit.of("engine"), [{"values": {"running": 1.0, "kv_cache_usage": 0.0}}])
        self.assertEqual(scraper.failures, 3)

    def test_metrics_off_and_nothing_listening(self):
        emit = Collector()
        scraper = Scraper(self.stand_in.url + "/not-here", SGLANG, 0.5, emit, lambda: None)
        scraper.scrape_once()
        self.assertIn("--enable-metrics", emit.of("log")[0]["msg"])  # a 404 says how metrics are turned on
        closed = StandIn({})
        url = closed.url + "/metrics"
        closed.close()
        emit = Collector()
        scraper = Scraper(url, SGLANG, 0.5, emit, lambda: None)
        for _ in range(2):
            self.assertIsNone(scraper.scrape_once())
        self.assertEqual(len(emit.of("log")), 1)
        self.assertEqual(emit.of("engine"), [])

    def test_an_exposition_without_the_expected_names_is_said_once(self):
        emit = Collector()
        self.stand_in.set("/metrics", 200, fixture("llamacpp-b4600.prom"))
        scraper = Scraper(self.stand_in.url + "/metrics", SGLANG, 0.5, emit, lambda: None)
        scraper.scrape_once()
        scraper.scrape_once()
        self.assertEqual(len(emit.of("log")), 1)
        self.assertIn("sglang:num_running_reqs", emit.of("log")[0]["msg"])

    def test_thread_scrapes_every_interval_until_stopped(self):
        emit = Collector()
        scraper = Scraper(self.stand_in.url + "/metrics", SGLANG, 0.5, emit, lambda: None)
        scraper.start()
        time.sleep(1.2)
        scraper.stop()
        self.assertFalse(scraper.is_alive())
        count = len(emit.of("engine"))
        self.assertIn(count, (2, 3))  # at 0, 0.5 and 1.0 s
        time.sleep(0.6)
        self.assertEqual(len(emit.of("engine")), count)


class ReadinessTest(unittest.TestCase):
    def test_paths_are_from_the_root_or_under_base_url(self):
        self.assertEqual(probe_target("http://h:8000/v1", "/health"), "/health")
        self.assertEqual(probe_target("http://h:8000/v1/", "models"), "/v1/models")
        self.assertEqual(probe_target("http://h:11434", "/api/version"), "/api/version")

    def test_503_while_loading_is_not_ready_and_the_first_200_is(self):
        stand_in = StandIn({"/health": (503, '{"error":{"code":503,"message":"Loading model"}}')})
        self.addCleanup(stand_in.close)
        ready, error = probe_paths(stand_in.url + "/v1", ["/health"])
        self.assertFalse(ready)
        self.assertEqual(error, "GET /health answered HTTP 503")
        stand_in.set("/v1/models", 200, "{}")
        self.assertEqual(probe_paths(stand_in.url + "/v1", ["/health", "models"]), (True, ""))
        self.assertEqual(stand_in.hits, {"/health": 2, "/v1/models": 1})


class AgentRunEngineEventsTest(AgentTestCase):
    def test_sim_run_with_metrics_url_writes_engine_events(self):
        stand_in = StandIn({"/metrics": (200, fixture("sglang-0.5.1.prom"))})
        self.addCleanup(stand_in.close)
        job = self.make_job([http_point("p1", num_prompts=24, max_tokens=60,
                                        dataset={"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 8},
                                                 "output_tokens": {"dist": "fixed", "mean": 60}})])
        job["server"].update({"metrics_url": stand_in.url + "/metrics", "metrics": SGLANG, "engine": "sglang"})
        job["telemetry"]["interval_s"] = 0.1
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        with mock.patch.dict(helpers.REQUIRED_FIELDS, {"engine": ("values",)}):  # docs/protocol.md's `engine`
            self.assert_well_formed(events)
        engine = self.of_type(events, "engine")
        self.assertGreaterEqual(len(engine), 2, [e["type"] for e in events])
        for e in engine:
            self.assertEqual(e["values"], {"running": 1.0, "kv_cache_usage": 0.0})
        seqs = {e["phase"]: e["seq"] for e in self.of_type(events, "phase")}
        self.assertTrue(all(seqs["server_ready"] < e["seq"] < seqs["server_stop"] for e in engine))
        self.assertTrue(any(e.get("point") == "p1" for e in engine))
        gaps = [b["t"] - a["t"] for a, b in zip(engine, engine[1:])]
        self.assertGreaterEqual(min(gaps), 0.45)  # the interval is at least 0.5 s, not the 0.1 s of sampling

    def test_probe_paths_decide_readiness_and_a_dead_metrics_url_is_not_fatal(self):
        # Ready only on a path of its own: the default probe (base_url/models, /health) would fail.
        stand_in = StandIn({"/ready-here": (200, "ok")})
        self.addCleanup(stand_in.close)
        closed = StandIn({})
        dead_metrics = closed.url + "/metrics"
        closed.close()
        server = {"sim": False, "command": None, "base_url": stand_in.url + "/v1", "api": "completions",
                  "model": "m", "ready_timeout_s": 5, "env": {}, "engine": "generic",
                  "probe_paths": ["/ready-here"], "metrics_url": dead_metrics, "metrics": VLLM}
        job = self.make_job([command_point("c1", "sleep 1.2")], server=server)
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assertEqual(self.done(events)["status"], "ok")
        self.assertEqual(stand_in.hits.get("/ready-here"), 1)
        warnings = [e for e in self.of_type(events, "log", level="warn") if dead_metrics in e["msg"]]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertEqual(self.of_type(events, "engine"), [])

        server["probe_paths"] = None  # without them the same server is not found
        result = self.run_agent(self.make_job([command_point("c1", "true")], server=server))
        self.assertNotEqual(result.returncode, 0)
        fatal = self.of_type(self.events(result.run_dir), "error", where="server")[0]
        self.assertIn("/v1/models answered HTTP 404", fatal["message"])


if __name__ == "__main__":
    unittest.main()
