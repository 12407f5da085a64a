"""`workload.kind: tool`: a stand-in `vllm` on PATH drives the sim server; its detailed result becomes `request`
events on the agent's clock, and the summary's J/token follows from them."""

import glob
import json
import os
import shutil
import subprocess
import unittest

from .helpers import AgentTestCase

from wattbench_agent.tools import missing_tool_message

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


class VllmToolTest(AgentTestCase):
    def run_with_path(self, job, path):
        env = dict(self.env, PATH=path)
        return self.run_agent(job, env=env)

    def test_vllm_bench_requests_and_joules_per_token(self):
        bin_dir = os.path.join(self.tmp, "bin")
        os.makedirs(bin_dir)
        shutil.copy(os.path.join(FAKE_TOOLS, "vllm"), os.path.join(bin_dir, "vllm"))
        os.chmod(os.path.join(bin_dir, "vllm"), 0o755)
        job = self.make_job([tool_point("vb", "vllm-bench", ["--num-prompts", "5", "--random-output-len", "30"])])
        result = self.run_with_path(job, bin_dir + os.pathsep + os.environ.get("PATH", ""))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)

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
        measure = self.of_type(events, "phase", phase="measure")[0]["t"]
        cooldown = self.of_type(events, "phase", phase="cooldown")[0]["t"]
        for before, after in zip(requests, requests[1:]):
            self.assertLessEqual(before["t_end"], after["t_start"] + 1e-6)
        self.assertGreaterEqual(requests[0]["t_start"], measure)
        self.assertLessEqual(requests[-1]["t_end"], cooldown)
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual((end["status"], end["requests"], end["errors"]), ("ok", 5, 0))

        # the summarizer's J/token: the point's energy over the tokens the tool counted
        out = subprocess.run(["npx", "tsx", "-e", SUMMARIZE, os.path.join(result.run_dir, "events.ndjson")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                             timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertEqual(summary["output"], sum(raw["output_lens"]))
        self.assertGreater(summary["total_j"], 0)
        self.assertAlmostEqual(summary["j"], summary["total_j"] / sum(raw["output_lens"]), places=9)

    def test_a_missing_tool_names_its_install_command(self):
        empty = os.path.join(self.tmp, "empty-bin")
        os.makedirs(empty)
        job = self.make_job([tool_point("vb", "vllm-bench", [])])
        # the agent itself still needs python: keep only its directory and an empty one
        python_dir = os.path.dirname(os.path.realpath(shutil.which("python3") or "/usr/bin/python3"))
        result = self.run_with_path(job, empty + os.pathsep + python_dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        if shutil.which("vllm", path=python_dir):
            self.skipTest("a real vllm is installed beside python")
        errors = self.of_type(events, "error", point="vb")
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("`vllm` executable", errors[0]["message"])
        self.assertIn("pip install vllm", errors[0]["message"])
        self.assertEqual(errors[0]["message"], missing_tool_message("vllm-bench"))
        self.assertEqual(self.of_type(events, "point", state="end")[0]["status"], "error")


if __name__ == "__main__":
    unittest.main()
