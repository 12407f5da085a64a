"""End-to-end runs on simulated GPUs with the simulated server: the event stream, energy against the
simulator's ground truth, load modes, power caps, the stand-in server itself."""

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

from .helpers import AGENT, SIM_PROFILE_PATH, AgentTestCase, find_free_port, http_point, max_overlap

from wattbench_agent.__main__ import write_pid_file
from wattbench_agent.util import pid_alive


class FullSimRunTest(AgentTestCase):
    def test_full_run_events_energy_and_caps(self):
        # Long outputs at a fixed concurrency keep the decode batch (so the power) steady through the
        # measure window, with a power cap below TDP that must be set and then restored.
        point = http_point("c4-cap300", power_cap_w=300, concurrency=4, num_prompts=4, warmup_requests=2,
                           max_tokens=300,
                           dataset={"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 8},
                                    "output_tokens": {"dist": "fixed", "mean": 300}})
        result = self.run_agent(self.make_job([point]))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)

        # stdout mirrors the file line for line
        self.assertEqual([json.loads(line) for line in result.stdout.splitlines()], events)

        types = {e["type"] for e in events}
        for needed in ("hello", "phase", "sample", "request", "point", "cap", "done"):
            self.assertIn(needed, types)
        hello = events[0]
        self.assertEqual(hello["type"], "hello")
        self.assertTrue(hello["simulated"])
        self.assertEqual(hello["run_id"], "test-run")
        self.assertEqual([g["index"] for g in hello["gpus"]], [0, 1])
        self.assertTrue(all(g["name"].startswith("Simulated ") for g in hello["gpus"]))
        self.assertTrue(all(g["energy_counter"] for g in hello["gpus"]))

        phases = [e["phase"] for e in self.of_type(events, "phase")]
        self.assertEqual(phases, ["baseline", "server_start", "server_ready", "cap", "warmup", "measure",
                                  "cooldown", "restore", "server_stop"])
        done = self.done(events)
        self.assertEqual((done["status"], done["caps_restored"]), ("ok", True))

        requests = self.of_type(events, "request")
        self.assertEqual(sum(r["warmup"] for r in requests), 2)
        measured = [r for r in requests if not r["warmup"]]
        self.assertEqual(len(measured), 4)
        for r in requests:
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["output_tokens"], 300)
            self.assertEqual(r["prompt_tokens"], 8)
            self.assertEqual(len(r["itl_s"]), 299)
            self.assertGreater(r["ttft_s"], 0)
            self.assertLess(r["ttft_s"], r["latency_s"])
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual((end["status"], end["requests"], end["errors"]), ("ok", 4, 0))

        # the cap was set on both GPUs, samples saw it, and the originals are back
        cap_set, cap_restore = self.of_type(events, "cap")
        self.assertEqual(cap_set["action"], "set")
        self.assertEqual(cap_set["gpus"], [{"i": 0, "from_w": 400.0, "to_w": 300.0},
                                           {"i": 1, "from_w": 400.0, "to_w": 300.0}])
        self.assertEqual(cap_restore["action"], "restore")
        self.assertEqual([g["to_w"] for g in cap_restore["gpus"]], [400.0, 400.0])
        self.assertEqual(self.sim_limits(), {"0": 400.0, "1": 400.0})
        self.assertFalse(os.path.exists(self.caps_file()))
        samples = self.of_type(events, "sample")
        self.assertTrue(any(s.get("point") == "c4-cap300" and s["gpus"][0]["limit_w"] == 300.0 for s in samples))

        # sampling: about 10 Hz, dt_s is the real interval
        for before, after in zip(samples, samples[1:]):
            self.assertAlmostEqual(after["dt_s"], after["t"] - before["t"], places=5)
        self.assertLess(abs(statistics.median(s["dt_s"] for s in samples[1:]) - 0.1), 0.02)

        # energy counters: every delta between samples equals the simulator's ground truth exactly
        first, last = samples[0], samples[-1]
        truth = self.sim_truth(first["t"], last["t"])
        for gpu in (0, 1):
            self.assertEqual(truth["gpus"][gpu]["e_from_j"], first["gpus"][gpu]["e_j"])
            self.assertEqual(truth["gpus"][gpu]["e_to_j"], last["gpus"][gpu]["e_j"])
            self.assertAlmostEqual(last["gpus"][gpu]["e_j"] - first["gpus"][gpu]["e_j"],
                                   truth["gpus"][gpu]["energy_j"], delta=1e-9)

        # trapezoid of sampled power over the steady-state part of the measure window (from the last
        # first token to the first request's last token, while all four decode: 20 ms in from each end so
        # that no power step falls between two samples) is within 1% of the true energy over the same span
        measure_start = self.of_type(events, "phase", phase="measure")[0]["t"]
        cooldown_start = self.of_type(events, "phase", phase="cooldown")[0]["t"]
        steady_from = max(r["t_start"] + r["ttft_s"] for r in measured) + 0.02
        steady_to = min(r["t_start"] + r["ttft_s"] + sum(r["itl_s"]) for r in measured) - 0.02
        self.assertTrue(measure_start < steady_from < steady_to < cooldown_start)
        window = [s for s in samples if steady_from <= s["t"] <= steady_to]
        self.assertGreaterEqual(len(window), 5)
        truth = self.sim_truth(window[0]["t"], window[-1]["t"])
        for gpu in (0, 1):
            trapezoid = sum((b["t"] - a["t"]) * (a["gpus"][gpu]["p_w"] + b["gpus"][gpu]["p_w"]) / 2
                            for a, b in zip(window, window[1:]))
            true_energy = truth["gpus"][gpu]["energy_j"]
            self.assertLess(abs(trapezoid - true_energy) / true_energy, 0.01, (trapezoid, true_energy))
            # above idle: the GPUs really were busy in the window
            self.assertGreater(true_energy / (window[-1]["t"] - window[0]["t"]), 150)

        state = self.state(result.run_dir)
        self.assertEqual(state["status"], "done")
        self.assertIsNotNone(state["ended"])
        with open(os.path.join(result.run_dir, "server.log")) as f:
            self.assertIn("SIMULATED", f.read())
        server_logs = [e for e in self.of_type(events, "log") if e["source"] == "server"]
        self.assertTrue(any("SIMULATED" in e["msg"] for e in server_logs))


class LoadModesTest(AgentTestCase):
    def test_concurrency_is_held(self):
        point = http_point("c3", concurrency=3, num_prompts=9, warmup_requests=0)
        result = self.run_agent(self.make_job([point], telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        requests = self.of_type(events, "request")
        self.assertEqual(sorted(r["i"] for r in requests), list(range(9)))
        self.assertTrue(all(r["ok"] for r in requests))
        self.assertEqual(max_overlap(requests), 3)

    def test_poisson_request_rate(self):
        point = http_point("rate", concurrency=None, request_rate=25.0, num_prompts=15, warmup_requests=1)
        result = self.run_agent(self.make_job([point], telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        measured = [r for r in self.of_type(events, "request") if not r["warmup"]]
        self.assertEqual(len(measured), 15)
        self.assertTrue(all(r["ok"] for r in measured))
        starts = sorted(r["t_start"] for r in measured)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        # exponential gaps: mean about 1/rate, and far from evenly spaced
        self.assertGreater(statistics.mean(gaps), 0.01)
        self.assertLess(statistics.mean(gaps), 0.2)
        self.assertGreater(statistics.pstdev(gaps), 0.2 * statistics.mean(gaps))
        # arrivals do not wait for earlier answers: with 20-token outputs (~90 ms) some overlap
        self.assertGreaterEqual(max_overlap(measured), 2)

    def test_time_limit_aborts_requests_in_flight(self):
        # each request would take ~1 s; the point may take 0.5 s
        slow = http_point("slow", concurrency=2, num_prompts=50, max_tokens=200, time_limit_s=0.5,
                          dataset={"kind": "synthetic", "input_tokens": 8, "output_tokens": 200})
        after = http_point("after", num_prompts=2)
        started = time.monotonic()
        result = self.run_agent(self.make_job([slow, after], telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.assertLess(time.monotonic() - started, 6)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        ends = {e["point"]: e for e in self.of_type(events, "point", state="end")}
        self.assertEqual((ends["slow"]["status"], ends["slow"]["requests"], ends["slow"]["errors"]),
                         ("timeout", 2, 2))
        for r in self.of_type(events, "request", point="slow"):
            self.assertIn("aborted (point time limit reached)", r["error"])
            self.assertLess(r["latency_s"], 0.8)
            self.assertGreater(r["output_tokens"], 10)  # tokens that did arrive are counted
        self.assertEqual(ends["after"]["status"], "ok")

    def test_chat_api_and_repeats(self):
        point = http_point("chat", num_prompts=3, concurrency=3)
        point["repeats"] = 2
        job = self.make_job([point], telemetry={"source": "sim", "idle_baseline_s": 0})
        job["server"]["api"] = "chat"
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        ends = self.of_type(events, "point", state="end")
        self.assertEqual([(e["repeat"], e["status"], e["requests"]) for e in ends], [(0, "ok", 3), (1, "ok", 3)])
        self.assertTrue(all(r["ok"] and r["output_tokens"] == 20 for r in self.of_type(events, "request")))


class SimTimingTest(AgentTestCase):
    def test_decode_steps_follow_profile_and_cap_slows_them(self):
        # One sequence at a time: the inter-token latency is one decode step. Uncapped it is
        # fixed_s + s_per_seq + context * s_per_ctx_token (~4.2 ms); at a 100 W cap the GPU demands
        # 60 + 0.354 * 340 = 180.4 W, so the step stretches by ((180.4-60)/(100-60)) ** 0.25 = 1.317.
        dataset = {"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 4},
                   "output_tokens": {"dist": "fixed", "mean": 120}}
        points = [http_point("free", concurrency=1, num_prompts=2, max_tokens=120, dataset=dataset),
                  http_point("capped", concurrency=1, num_prompts=2, max_tokens=120, dataset=dataset,
                             power_cap_w=100)]
        result = self.run_agent(self.make_job(points, telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)

        def median_itl(point):
            return statistics.median(x for r in self.of_type(events, "request", point=point) for x in r["itl_s"])

        free, capped = median_itl("free"), median_itl("capped")
        expected = 0.004 + 0.0002 + 64 * 1e-7
        self.assertGreater(free, expected * 0.98)
        self.assertLess(free, expected * 1.3)
        self.assertGreater(capped / free, 1.15)
        self.assertLess(capped / free, 1.5)
        capped_samples = [s for s in self.of_type(events, "sample", point="capped")
                          if s["gpus"][0]["util"] > 0]
        self.assertTrue(capped_samples)
        # Readings are means over the sampling interval: never above the cap, at it while busy.
        self.assertTrue(all(s["gpus"][0]["p_w"] <= 100.0 + 1e-6 for s in capped_samples))
        self.assertAlmostEqual(statistics.median(s["gpus"][0]["p_w"] for s in capped_samples), 100.0, delta=0.5)


class SimServerTest(AgentTestCase):
    def test_stand_in_server_endpoints(self):
        port = find_free_port()
        log_path = os.path.join(self.tmp, "server.log")
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                self.agent_command("sim-server", "--port", str(port), "--profile", SIM_PROFILE_PATH,
                                   "--sim-dir", self.sim_dir, "--model", "tiny"),
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._procs.append(server)
        base = "http://127.0.0.1:%d" % port

        def get(path):
            try:
                with urllib.request.urlopen(base + path, timeout=2) as response:
                    return json.loads(response.read())
            except OSError:
                return None

        models = self.wait_for(lambda: get("/v1/models"), what="sim-server")
        self.assertEqual(models["data"][0]["id"], "tiny")
        self.assertEqual(models["data"][0]["owned_by"], "wattbench-sim")
        self.assertEqual(get("/health")["status"], "ok")

        def post(path, body):
            request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read().decode()

        whole = json.loads(post("/v1/completions", {"model": "tiny", "prompt": "one two three", "max_tokens": 5,
                                                    "ignore_eos": True}))
        self.assertEqual(whole["usage"], {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8})
        self.assertEqual(len(whole["choices"][0]["text"].split()), 5)

        stream = post("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "a b"}],
                                               "max_tokens": 4, "ignore_eos": True, "stream": True,
                                               "stream_options": {"include_usage": True}})
        lines = [l[len("data: "):] for l in stream.split("\n\n") if l.startswith("data: ")]
        self.assertEqual(lines[-1], "[DONE]")
        chunks = [json.loads(l) for l in lines[:-1]]
        words = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        self.assertEqual(len([w for w in words if w]), 4)
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 4)

        # without ignore_eos the output length is seeded-random but within max_tokens
        lengths = [json.loads(post("/v1/completions", {"prompt": "x", "max_tokens": 6}))["usage"]["completion_tokens"]
                   for _ in range(5)]
        self.assertTrue(all(1 <= n <= 6 for n in lengths))

        # it drove the simulated GPUs: busy power lines in power.log, idle again at SIGTERM
        server.terminate()
        server.wait(timeout=10)
        with open(os.path.join(self.sim_dir, "power.log")) as f:
            powers = [float(line.split()[2]) for line in f]
        self.assertGreater(max(powers), 60.0)
        self.assertEqual(powers[-1], 60.0)
        with open(log_path) as f:
            self.assertIn("SIMULATED", f.read())


class DetachAndListRunsTest(AgentTestCase):
    def test_pid_file_is_never_seen_empty_while_rewritten(self):
        # A detached start writes agent.pid from two processes while the caller reads it; a truncating
        # write once left the caller reading '' (ValueError in detach_and_run, the run reported failed).
        path = os.path.join(self.tmp, "agent.pid")
        write_pid_file(path, 4242)
        writer = subprocess.Popen([sys.executable, "-c",  # the package imported from the archive, as it ships
                                   "import sys; sys.path.insert(0, %r); from wattbench_agent.__main__ import write_pid_file\n"
                                   "for i in range(3000): write_pid_file(%r, 4242)" % (AGENT, path)])
        seen = set()
        while writer.poll() is None:
            with open(path) as f:
                seen.add(f.read())
        self.assertEqual(writer.returncode, 0)
        self.assertEqual(seen, {"4242\n"})
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith("agent.pid.")], [])

    def test_detach_returns_at_once_and_list_runs_reports(self):
        point = http_point("p", num_prompts=4)
        started = time.monotonic()
        run = self.start_agent(self.make_job([point], telemetry={"source": "sim", "idle_baseline_s": 1.0}),
                               detach=True)
        self.assertLess(time.monotonic() - started, 1.0)  # it did not wait for the 1 s baseline
        with open(os.path.join(run.run_dir, "agent.pid")) as f:
            self.assertEqual(int(f.read()), run.pid)
        state = self.wait_for(lambda: self.state(run.run_dir), what="state.json")
        self.assertEqual(state["pid"], run.pid)
        self.assertEqual(state["pgid"], run.pid)  # a session of its own

        listing = self.run_tool("list-runs", "--root", os.path.dirname(run.run_dir))
        rows = [json.loads(line) for line in listing.stdout.splitlines()]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["pid"], run.pid)
        self.assertTrue(rows[0]["alive"])
        self.assertEqual(rows[0]["status"], "running")

        self.wait_for(lambda: not pid_alive(run.pid), what="the detached agent to finish")
        events = self.events(run.run_dir)
        self.assert_well_formed(events)
        self.assertEqual(self.done(events)["status"], "ok")
        rows = [json.loads(line) for line in
                self.run_tool("list-runs", "--root", os.path.dirname(run.run_dir)).stdout.splitlines()]
        self.assertEqual((rows[0]["run_id"], rows[0]["alive"], rows[0]["status"]), ("test-run", False, "done"))
