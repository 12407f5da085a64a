"""`workload.kind: tool`: stand-in `vllm`, `guidellm` and `aiperf` executables on PATH drive the sim server; each
one's own per-request file becomes `request` events on the agent's clock, and the summary's J/token follows."""

import glob
import json
import os
import shutil
import subprocess
import unittest

from .helpers import AgentTestCase

from wattbench_agent.tools import TOOLS, ClockOffsets, _read_aiperf, _read_guidellm, missing_tool_message

FAKE_TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_tools")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUMMARIZE = """
import { readFileSync } from 'node:fs';
import { summarize } from './src/core/run/summarize';
const events = readFileSync(process.argv[1], 'utf8').split('\\n').filter(Boolean).map((l) => JSON.parse(l));
const p = summarize(events).points[0];
console.log(JSON.stringify({ j: p.j_per_output_token, total_j: p.energy.total_j, output: p.tokens.output }));
"""


def tool_point(point_id, tool, tool_args):
    return {"id": point_id, "label": point_id, "power_cap_w": None, "repeats": 1,
            "workload": {"kind": "tool", "tool": tool, "tool_args": tool_args, "time_limit_s": 60}}


def summarize_point(test, run_dir):
    """The TypeScript summarizer's view of the run's first point."""
    out = subprocess.run(["npx", "tsx", "-e", SUMMARIZE, os.path.join(run_dir, "events.ndjson")],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=120)
    test.assertEqual(out.returncode, 0, out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


class ToolTestCase(AgentTestCase):
    def run_with_path(self, job, path):
        env = dict(self.env, PATH=path)
        return self.run_agent(job, env=env)

    def run_fake(self, name, point, **job):
        """Run a job with the stand-in `name` first on PATH; returns the result and its well-formed events."""
        bin_dir = os.path.join(self.tmp, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        shutil.copy(os.path.join(FAKE_TOOLS, name), os.path.join(bin_dir, name))
        os.chmod(os.path.join(bin_dir, name), 0o755)
        result = self.run_with_path(self.make_job([point], **job), bin_dir + os.pathsep + os.environ.get("PATH", ""))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        return result, events

    def assert_inside_measure(self, events, requests):
        measure = self.of_type(events, "phase", phase="measure")[0]["t"]
        cooldown = self.of_type(events, "phase", phase="cooldown")[0]["t"]
        self.assertGreaterEqual(min(r["t_start"] for r in requests), measure)
        self.assertLessEqual(max(r["t_end"] for r in requests), cooldown)


class VllmToolTest(ToolTestCase):
    def test_vllm_bench_requests_and_joules_per_token(self):
        result, events = self.run_fake(
            "vllm", tool_point("vb", "vllm-bench", ["--num-prompts", "5", "--random-output-len", "30"]))

        # the tool's own file, kept in the run directory, is the expected value
        files = glob.glob(os.path.join(result.run_dir, "tool-output", "vb-r0", "*.json"))
        self.assertEqual(len(files), 1, files)
        with open(files[0]) as f:
            raw = json.load(f)
        self.assertEqual(raw["output_lens"], [30] * 5)

        requests = self.of_type(events, "request", point="vb")
        self.assertEqual([r["output_tokens"] for r in requests], raw["output_lens"])
        self.assertEqual([r["prompt_tokens"] for r in requests], raw["input_lens"])
        for r, ttft, itl in zip(requests, raw["ttfts"], raw["itls"]):
            self.assertTrue(r["ok"])
            self.assertAlmostEqual(r["ttft_s"], ttft, places=9)
            self.assertEqual(len(r["itl_s"]), len(itl))
        # perf_counter stamps land inside the measure phase on the agent's clock, one after another
        for before, after in zip(requests, requests[1:]):
            self.assertLessEqual(before["t_end"], after["t_start"] + 1e-6)
        self.assert_inside_measure(events, requests)
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual((end["status"], end["requests"], end["errors"]), ("ok", 5, 0))

        # the summarizer's J/token: the point's energy over the tokens the tool counted
        summary = summarize_point(self, result.run_dir)
        self.assertEqual(summary["output"], sum(raw["output_lens"]))
        self.assertGreater(summary["total_j"], 0)
        self.assertAlmostEqual(summary["j"], summary["total_j"] / sum(raw["output_lens"]), places=9)



class GuidellmToolTest(ToolTestCase):
    ARGS = ["--data", "prompt_tokens=12,output_tokens=24", "--profile", "synchronous", "--max-requests", "6"]

    def test_guidellm_requests_match_benchmarks_json_and_joules_per_token(self):
        server = {"sim": True, "command": None, "base_url": None, "api": "chat", "model": "sim-model",
                  "ready_timeout_s": 20, "env": {}}
        result, events = self.run_fake("guidellm", tool_point("gl", "guidellm", self.ARGS + ["--fail-every", "3"]),
                                       server=server)
        with open(os.path.join(result.run_dir, "tool-output", "gl-r0", "benchmarks.json")) as f:
            raw = json.load(f)
        rows = raw["benchmarks"][0]["requests"]
        ok_rows, bad_rows = rows["successful"], rows["errored"]
        self.assertEqual((len(ok_rows), len(bad_rows)), (4, 2))  # every third request was refused
        self.assertEqual(raw["benchmarks"][0]["metrics"]["request_totals"]["total"], 6)

        requests = self.of_type(events, "request", point="gl")
        self.assertEqual(len(requests), 6)
        # the file's rows in their start order, beside the events (which the agent sorts by start)
        expected = sorted([(r, True) for r in ok_rows] + [(r, False) for r in bad_rows],
                          key=lambda pair: pair[0]["info"]["timings"]["request_start"])
        first_start = expected[0][0]["info"]["timings"]["request_start"]
        for event, (row, ok) in zip(requests, expected):
            timings = row["info"]["timings"]
            self.assertEqual(event["ok"], ok)
            # wall-clock stamps on the agent's clock (itself wall time at its start): same spacing, same place
            self.assertAlmostEqual(event["t_start"] - requests[0]["t_start"], timings["request_start"] - first_start,
                                   places=6)
            self.assertLess(abs(event["t_start"] - timings["request_start"]), 0.5)
            self.assertEqual(event["prompt_tokens"], row["input_metrics"]["text_tokens"])
            if ok:
                self.assertEqual(event["output_tokens"], 24)
                self.assertAlmostEqual(event["latency_s"], timings["request_end"] - timings["request_start"], places=6)
                self.assertAlmostEqual(event["ttft_s"], timings["first_token_iteration"] - timings["request_start"],
                                       places=6)
                # one value per gap, whose mean is GuideLLM's (last − first token) / (tokens − 1)
                self.assertEqual(len(event["itl_s"]), 23)
                self.assertAlmostEqual(sum(event["itl_s"]),
                                       timings["last_token_iteration"] - timings["first_token_iteration"], places=6)
            else:
                self.assertEqual(event["output_tokens"], 0)
                self.assertIsNone(event["ttft_s"])
                self.assertIn("404", event["error"])
        self.assert_inside_measure(events, requests)
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual((end["requests"], end["errors"]), (6, 2))
        notes = [e["msg"] for e in self.of_type(events, "log", level="warn")]
        self.assertTrue(any("GuideLLM records each request's first and last token" in n for n in notes), notes)

        # the offset taken at tool start is added exactly
        records, _ = _read_guidellm(os.path.join(result.run_dir, "tool-output", "gl-r0"), ClockOffsets(0.0, 1000.0),
                                    0.0, 0.0)
        self.assertEqual(sorted(r["t_start"] for r in records),
                         sorted(row["request_start_time"] + 1000.0 for row in ok_rows + bad_rows))

        summary = summarize_point(self, result.run_dir)
        self.assertEqual(summary["output"], 4 * 24)
        self.assertGreater(summary["total_j"], 0)
        self.assertAlmostEqual(summary["j"], summary["total_j"] / (4 * 24), places=9)

    def test_a_sampled_file_is_refused(self):
        # a user's --sample-requests comes after Wattbench's and wins: the file then keeps 2 of 6
        result, events = self.run_fake("guidellm", tool_point("gl", "guidellm", self.ARGS + ["--sample-requests", "2"]))
        with open(os.path.join(result.run_dir, "tool-output", "gl-r0", "benchmarks.json")) as f:
            self.assertEqual(len(json.load(f)["benchmarks"][0]["requests"]["successful"]), 2)
        errors = self.of_type(events, "error", point="gl")
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("keeps 2 of its 6 successful requests", errors[0]["message"])
        self.assertEqual(self.of_type(events, "request", point="gl"), [])
        self.assertEqual(self.of_type(events, "point", state="end")[0]["status"], "error")


class AiperfToolTest(ToolTestCase):
    def test_aiperf_requests_match_profile_export_and_joules_per_token(self):
        args = ["--request-count", "6", "--warmup-request-count", "1", "--output-tokens-mean", "20",
                "--synthetic-input-tokens-mean", "10", "--fail-every", "4"]
        result, events = self.run_fake("aiperf", tool_point("ap", "aiperf", args))
        with open(os.path.join(result.run_dir, "tool-output", "ap-r0", "profile_export.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(len(rows), 6)  # warm-up requests are not exported
        self.assertEqual([r["error"] is None for r in rows], [True, True, True, False, True, True])

        requests = self.of_type(events, "request", point="ap")
        self.assertEqual(len(requests), 6)
        for event, row in zip(requests, rows):
            meta, metrics = row["metadata"], row["metrics"]
            self.assertAlmostEqual(event["t_start"] - requests[0]["t_start"],
                                   (meta["request_start_ns"] - rows[0]["metadata"]["request_start_ns"]) / 1e9, places=6)
            self.assertLess(abs(event["t_start"] - meta["request_start_ns"] / 1e9), 0.5)
            self.assertAlmostEqual(event["latency_s"], (meta["request_end_ns"] - meta["request_start_ns"]) / 1e9,
                                   places=6)
            if row["error"] is None:
                self.assertTrue(event["ok"])
                self.assertEqual(event["output_tokens"], metrics["output_sequence_length"]["value"])
                self.assertEqual(event["output_tokens"], 20)
                self.assertEqual(event["prompt_tokens"], metrics["input_sequence_length"]["value"])
                self.assertAlmostEqual(event["ttft_s"], metrics["time_to_first_token"]["value"] / 1000, places=9)
                self.assertEqual(len(event["itl_s"]), 19)
                for gap, ms in zip(event["itl_s"], metrics["inter_chunk_latency"]["value"]):
                    self.assertAlmostEqual(gap, ms / 1000, places=9)
            else:
                self.assertFalse(event["ok"])
                self.assertEqual(event["output_tokens"], 0)
                self.assertEqual(event["error"], row["error"]["message"])
        self.assert_inside_measure(events, requests)
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual((end["requests"], end["errors"]), (6, 1))

        records, _ = _read_aiperf(os.path.join(result.run_dir, "tool-output", "ap-r0"), ClockOffsets(0.0, 1000.0),
                                  0.0, 0.0)
        self.assertEqual([r["t_end"] for r in records], [r["metadata"]["request_end_ns"] / 1e9 + 1000.0 for r in rows])

        summary = summarize_point(self, result.run_dir)
        self.assertEqual(summary["output"], 5 * 20)
        self.assertAlmostEqual(summary["j"], summary["total_j"] / (5 * 20), places=9)


class MissingToolTest(ToolTestCase):
    def test_a_missing_tool_names_its_install_command(self):
        empty = os.path.join(self.tmp, "empty-bin")
        os.makedirs(empty)
        # the agent itself still needs python: keep only its directory and an empty one
        python_dir = os.path.dirname(os.path.realpath(shutil.which("python3") or "/usr/bin/python3"))
        expected = {"vllm-bench": ("vllm", "pip install vllm"), "guidellm": ("guidellm", "pip install guidellm"),
                    "aiperf": ("aiperf", "pip install aiperf")}
        self.assertEqual(set(expected), set(TOOLS))
        for tool, (executable, install) in expected.items():
            with self.subTest(tool=tool):
                if shutil.which(executable, path=python_dir):
                    self.skipTest("a real %s is installed beside python" % executable)
                result = self.run_with_path(self.make_job([tool_point("p", tool, [])]), empty + os.pathsep + python_dir)
                self.assertEqual(result.returncode, 0, result.stderr)
                events = self.events(result.run_dir)
                errors = self.of_type(events, "error", point="p")
                self.assertEqual(len(errors), 1, errors)
                self.assertIn("`%s` executable" % executable, errors[0]["message"])
                self.assertIn(install, errors[0]["message"])
                self.assertEqual(errors[0]["message"], missing_tool_message(tool))
                self.assertEqual(self.of_type(events, "point", state="end")[0]["status"], "error")


if __name__ == "__main__":
    unittest.main()
