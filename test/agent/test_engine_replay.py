"""The engine presets against replayed engines: the job's `server` exactly as the TypeScript side builds it for
each engine (test/unit/engines-job.test.ts writes it), run by the agent as it ships against a stand-in that
answers as that engine does (its readiness routes, llama-server's 503 while loading, its generate route only)
and streams the engine's recorded responses (test/fixtures/sse). Checked: the agent probed the preset's paths,
each request body carried exactly the preset's fields, and each request event's TTFT, token count and its
source match what the transcript says (read by test_sse_corpus.expected_of, not by the agent's code)."""

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
from typing import Any, Dict, List, Tuple

from .helpers import REPO, SIM_PROFILE, AgentTestCase
from .replay_server import ENGINE_GETS, ReplayServer, all_transcripts, load_transcript
from .test_sse_corpus import SLACK_S, expected_of
from .test_sse_corpus import workload as workload_config

from wattbench_agent.client import Endpoint
from wattbench_agent.prompts import RequestSpec

# transcript file prefix -> engine preset name
ENGINE_OF_PREFIX = {"vllm-": "vllm", "sglang-": "sglang", "tgi-": "tgi", "llamacpp-": "llama.cpp",
                    "ollama-": "ollama", "trtllm-": "trtllm", "openai-": "openai"}

# The engines whose own docs have `ignore_eos` on the route the preset uses (vLLM and SGLang sampling
# parameters, llama-server's /completion options, trtllm-serve's OpenAI protocol); TGI's routes, Ollama's
# OpenAI route and the OpenAI API have none.
TAKES_IGNORE_EOS = {"vllm", "sglang", "llama.cpp", "trtllm"}

LLAMACPP_LOADING_PROBES = 2  # probes llama-server answers 503 "Loading model" before it can serve

JOBS_TIMEOUT_S = 120


def api_of(endpoint: str) -> str:
    path = urllib.parse.urlsplit(endpoint.split(" ", 1)[1]).path
    return {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/generate_stream": "generate"}[path]


def replayed_groups() -> Dict[Tuple[str, str], List[str]]:
    """(engine, api) -> the transcripts of complete, successful streams recorded on that route."""
    groups = {}  # type: Dict[Tuple[str, str], List[str]]
    for name in all_transcripts():
        engine = next((e for prefix, e in ENGINE_OF_PREFIX.items() if name.startswith(prefix)), None)
        t = load_transcript(name)
        if engine is None or t.status != 200:
            continue
        expected = expected_of(t)
        if expected.ok and not expected.reset:
            groups.setdefault((engine, api_of(t.header["endpoint"])), []).append(name)
    return groups


def preset_jobs(out_dir: str) -> None:
    """Runs the TypeScript unit test that builds each engine's job, writing them into out_dir."""
    env = dict(os.environ, WATTBENCH_ENGINE_JOBS_DIR=out_dir)
    subprocess.run(["npx", "tsx", "--test", os.path.join("test", "unit", "engines-job.test.ts")], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=JOBS_TIMEOUT_S)


class EngineReplayTest(AgentTestCase):
    jobs_dir = ""

    @classmethod
    def setUpClass(cls) -> None:
        if shutil.which("npx") is None or not os.path.isdir(os.path.join(REPO, "node_modules", "tsx")):
            raise unittest.SkipTest("needs node and the repo's node_modules (npm ci) to build the jobs in TypeScript")
        cls.jobs_dir = tempfile.mkdtemp(prefix="wattbench-engine-jobs-")
        preset_jobs(cls.jobs_dir)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.jobs_dir, ignore_errors=True)

    def test_the_corpus_has_a_stream_for_every_engine(self):
        engines = {engine for engine, _ in replayed_groups()}
        self.assertEqual(engines, set(ENGINE_OF_PREFIX.values()))
        self.assertIn(("tgi", "generate"), replayed_groups())

    def test_each_engine_preset_against_its_replayed_streams(self):
        for (engine, api), names in sorted(replayed_groups().items()):
            with self.subTest(engine=engine, api=api):
                self.run_group(engine, api, names)

    def run_group(self, engine: str, api: str, names: List[str]) -> None:
        with open(os.path.join(self.jobs_dir, "%s-%s.json" % (engine, api))) as f:
            job = json.load(f)
        transcripts = [load_transcript(n) for n in names]
        loading = LLAMACPP_LOADING_PROBES if engine == "llama.cpp" else 0
        server = ReplayServer(transcripts[0], engine=engine, loading=loading, transcripts=transcripts[1:])
        try:
            # a hosted API's key is read from the agent's environment on the host (engine openai: OPENAI_API_KEY)
            env = dict(self.env, OPENAI_API_KEY="sk-replay-key") if job["server"].get("api_key_env") else None
            result = self.run_agent(self.replay_job(job, server.base_url, len(names)), env=env)
        finally:
            server.close()
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        self.check_probes(job, server, engine, loading)
        authorization = {r["headers"].get("authorization") for r in server.requests}
        self.assertEqual(authorization, {"Bearer sk-replay-key"} if engine == "openai" else {None})
        self.check_bodies(job, server, engine, api, names)
        requests = self.of_type(events, "request")
        self.assertEqual([r["point"] for r in requests], ["t%d" % i for i in range(len(names))])
        for request, t in zip(requests, transcripts):
            self.check_request(request, t)

    @staticmethod
    def replay_job(job: Dict[str, Any], base_url: str, points: int) -> Dict[str, Any]:
        """The TypeScript job, pointed at the stand-in: its base_url, a stand-in process for the agent to start
        and stop (the stand-in itself runs in this test, which reads what it was sent), simulated GPUs; one
        point (one request) per transcript."""
        job = copy.deepcopy(job)
        job["server"].update(base_url=base_url, command="exec sleep 60", ready_timeout_s=20, metrics_url=None)
        job["telemetry"] = {"source": "sim", "interval_s": 0.1, "idle_baseline_s": 0}
        job["sim"] = copy.deepcopy(SIM_PROFILE)
        point = job["points"][0]
        job["points"] = [dict(copy.deepcopy(point), id="t%d" % i, label="t%d" % i) for i in range(points)]
        return job

    def check_probes(self, job: Dict[str, Any], server: ReplayServer, engine: str, loading: int) -> None:
        first_post = next(i for i, r in enumerate(server.requests) if r["method"] == "POST")
        probes = [r["path"] for r in server.requests[:first_post]]
        self.assertTrue(all(r["method"] == "GET" for r in server.requests[:first_post]))
        # the preset's paths: `/x` from the root, `x` under base_url's /v1
        paths = [p if p.startswith("/") else "/v1/" + p for p in job["server"]["probe_paths"]]
        self.assertTrue(probes, "no readiness probe before the first request")
        self.assertTrue(set(probes) <= set(paths), (probes, paths))
        self.assertEqual(probes[:len(paths)], paths[:len(probes[:len(paths)])], "probed out of the preset's order")
        # ready at the first of the preset's paths the engine serves, once it stopped loading
        served = next(p for p in paths if p in ENGINE_GETS[engine])
        self.assertEqual(probes[-1], served)
        self.assertEqual(sum(r["loading"] for r in server.requests[:first_post]), loading)

    def check_bodies(self, job: Dict[str, Any], server: ReplayServer, engine: str, api: str,
                     names: List[str]) -> None:
        posts = server.posts
        self.assertEqual([p["transcript"] for p in posts], names, "a request went to a route the engine lacks")
        workload = job["points"][0]["workload"]
        fields = job["server"]["request_fields"]
        for post in posts:
            body = post["body"]
            if api == "generate":
                # TGI's documented GenerateRequest; greedy (temperature 0) is no temperature at all
                self.assertEqual(workload["temperature"], 0)
                self.assertEqual(body, {"inputs": body["inputs"],
                                        "parameters": dict(fields, max_new_tokens=workload["max_tokens"],
                                                           details=True)})
                self.assertIsInstance(body["inputs"], str)
                continue
            own = {"model", "max_tokens", "temperature", "stream", "stream_options",
                   "messages" if api == "chat" else "prompt"}
            self.assertEqual(set(body), own | set(fields), body)
            for key, value in fields.items():
                self.assertEqual(body[key], value)
            self.assertEqual((body["model"], body["max_tokens"], body["stream"]),
                             (job["server"]["model"], workload["max_tokens"], True))
            self.assertEqual(body.get("ignore_eos"), True if engine in TAKES_IGNORE_EOS else None, engine)

    def check_request(self, request: Dict[str, Any], t: Any) -> None:
        expected = expected_of(t)
        self.assertTrue(request["ok"], (t.name, request))
        self.assertGreaterEqual(request["ttft_s"], expected.ttft - 0.002, (t.name, request))
        self.assertLess(request["ttft_s"], expected.ttft + SLACK_S, (t.name, request))
        self.assertEqual(request["output_tokens"], expected.output_tokens, (t.name, request))
        self.assertEqual(request.get("tokens_from"), "usage" if expected.usage_tokens is not None else "chunks",
                         (t.name, request))
        self.assertEqual(len(request["itl_s"]), len(expected.itl), (t.name, request))


class GenerateRouteTest(unittest.TestCase):
    """`api: generate` by TGI's rules (router/src/validation.rs): temperature must be > 0 and turns sampling on,
    top_p must lie in (0, 1); the route is /generate_stream on the server's root."""

    def body(self, temperature: float, top_p: Any = None) -> Dict[str, Any]:
        workload = dataclasses.replace(workload_config(), temperature=temperature, top_p=top_p)
        return Endpoint("http://h:8080/v1", "generate", "m", {}).request_body(RequestSpec("Hello", 3, 7), workload)

    def test_the_body(self):
        self.assertEqual(self.body(0.0), {"inputs": "Hello", "parameters": {"max_new_tokens": 7, "details": True}})
        self.assertEqual(self.body(0.7, 1.0)["parameters"], {"max_new_tokens": 7, "details": True, "temperature": 0.7})
        self.assertEqual(self.body(0.7, 0.9)["parameters"]["top_p"], 0.9)
        # an engine field goes into parameters; the job's own ones cannot be replaced by it
        endpoint = Endpoint("http://h:8080", "generate", "m", {"max_new_tokens": 1, "repetition_penalty": 1.1})
        parameters = endpoint.request_body(RequestSpec("Hi", 1, 7), workload_config())["parameters"]
        self.assertEqual(parameters, {"max_new_tokens": 7, "details": True, "repetition_penalty": 1.1})

    def test_the_route(self):
        for base_url, path in (("http://h:8080/v1", "/generate_stream"), ("http://h:8080", "/generate_stream"),
                               ("http://h/tgi/v1/", "/tgi/generate_stream")):
            self.assertEqual(Endpoint(base_url, "generate", "m").generate_path, path, base_url)


if __name__ == "__main__":
    unittest.main()
