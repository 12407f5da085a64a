"""Command workloads, dataset files in each format, and clear errors for bad input."""

import json
import os
import random
import sys

from .helpers import AgentTestCase, command_point, http_point

from wattbench_agent.job import JobError, LengthDist, load_prompt_file
from wattbench_agent.prompts import synthetic_text

WORKLOAD_SCRIPT = r"""
import json, sys, time
print("warming up the client")
for n in range(3):
    print("WATTBENCH " + json.dumps({"output_tokens": 10 + n, "prompt_tokens": 5, "latency_s": 0.05}))
    sys.stdout.flush()
    time.sleep(0.05)
print("WATTBENCH {not json")
print("WATTBENCH " + json.dumps({"output_tokens": 0, "latency_s": 0.01, "error": "HTTP 500"}))
print("done", file=sys.stderr)
"""


class CommandWorkloadTest(AgentTestCase):
    def test_wattbench_lines_become_requests(self):
        script = os.path.join(self.tmp, "client.py")
        with open(script, "w") as f:
            f.write(WORKLOAD_SCRIPT)
        python = sys.executable
        points = [
            command_point("client", "%s %s" % (python, script)),
            command_point("slow", "echo started; exec sleep 30", workload={"time_limit_s": 0.5}),
            command_point("fails", "echo 'bad flag' >&2; exit 3"),
            command_point("env", "echo \"WATTBENCH {\\\"output_tokens\\\": 1, \\\"latency_s\\\": 0.1, "
                                 "\\\"point\\\": \\\"$WATTBENCH_POINT\\\"}\""),
        ]
        job = self.make_job(points, server=None, telemetry={"source": "sim", "idle_baseline_s": 0})
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)

        requests = self.of_type(events, "request", point="client")
        self.assertEqual([r["output_tokens"] for r in requests], [10, 11, 12, 0])
        self.assertEqual([r["ok"] for r in requests], [True, True, True, False])
        self.assertEqual(requests[3]["error"], "HTTP 500")
        for r in requests:
            self.assertAlmostEqual(r["t_end"] - r["t_start"], r["latency_s"], places=6)
            self.assertFalse(r["warmup"])
        self.assertTrue(any("not WATTBENCH {json}" in e["msg"] for e in self.of_type(events, "log")))

        ends = {e["point"]: e for e in self.of_type(events, "point", state="end")}
        self.assertEqual((ends["client"]["status"], ends["client"]["requests"], ends["client"]["errors"]),
                         ("ok", 4, 1))
        self.assertEqual(ends["slow"]["status"], "timeout")
        self.assertEqual(ends["fails"]["status"], "error")
        failure = self.of_type(events, "error", point="fails")[0]
        self.assertEqual((failure["where"], failure["fatal"]), ("workload", False))
        self.assertIn("exited with code 3", failure["message"])
        self.assertIn("bad flag", failure["detail"])
        self.assertEqual(ends["env"]["requests"], 1)
        self.assertEqual(self.done(events)["status"], "ok")
        # samples during the command carry its point
        self.assertTrue(self.of_type(events, "sample", point="slow"))

        with open(os.path.join(result.run_dir, "workload.log")) as f:
            log = f.read()
        self.assertIn("warming up the client", log)
        self.assertIn("done", log)
        self.assertNotIn("WATTBENCH {\"output_tokens\": 10", log)

    def test_a_field_of_the_wrong_type_is_named_and_never_coerced(self):
        # "128" would have been added as text (5 + "128" concatenates in the summary): the line is refused.
        script = os.path.join(self.tmp, "typed.py")
        with open(script, "w") as f:
            f.write("import json\n"
                    "print('WATTBENCH ' + json.dumps({'output_tokens': 5, 'latency_s': 0.1}))\n"
                    "print('WATTBENCH ' + json.dumps({'output_tokens': '128', 'latency_s': 0.1}))\n"
                    "print('WATTBENCH ' + json.dumps({'output_tokens': 7, 'latency_s': 'fast'}))\n"
                    "print('WATTBENCH ' + json.dumps({'output_tokens': 7, 'ok': 'yes'}))\n"
                    "print('WATTBENCH ' + json.dumps({'output_tokens': 6, 'latency_s': 0.2, 'itl_s': [0.1, 0.1]}))\n")
        job = self.make_job([command_point("typed", "%s %s" % (sys.executable, script))], server=None,
                            telemetry={"source": "sim", "idle_baseline_s": 0})
        result = self.run_agent(job)
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        self.assertEqual([r["output_tokens"] for r in self.of_type(events, "request", point="typed")], [5, 6])
        errors = [e["message"] for e in self.of_type(events, "error", point="typed")]
        self.assertEqual(len(errors), 3, errors)
        self.assertIn("line 2", errors[0])
        self.assertIn("'output_tokens' is str \"128\", expected a whole number", errors[0])
        self.assertIn("line 3", errors[1])
        self.assertIn("'latency_s'", errors[1])
        self.assertIn("line 4", errors[2])
        self.assertIn("'ok'", errors[2])
        end = self.of_type(events, "point", state="end")[0]
        self.assertEqual(end["requests"], 2)


DATASETS = {
    "alpaca.jsonl": ("jsonl", [{"instruction": "Name three colours", "input": "", "output": "red"},
                               {"instruction": "Translate this", "input": "good morning friend", "output": "x"}],
                     ["Name three colours", "Translate this\n\ngood morning friend"]),
    "gsm8k.json": ("array", [{"question": "What is two plus two?", "answer": "4"},
                             {"question": "How many legs do three cats have?", "answer": "12"}],
                   ["What is two plus two?", "How many legs do three cats have?"]),
    "sharegpt.json": ("array", [{"conversations": [{"from": "system", "value": "be nice"},
                                                   {"from": "human", "value": "hello there assistant"},
                                                   {"from": "gpt", "value": "hi"}]},
                                {"conversations": [{"from": "gpt", "value": "no human turn"}]},
                                {"conversations": [{"role": "user", "content": "one two"}]}],
                      ["hello there assistant", "one two"]),
    "strings.jsonl": ("jsonl", ["just a plain prompt", "another one"], ["just a plain prompt", "another one"]),
    "prompts.json": ("array", [{"prompt": "write a haiku about power"}], ["write a haiku about power"]),
}


class DatasetFileTest(AgentTestCase):
    def write_datasets(self):
        for name, (layout, records, _) in DATASETS.items():
            with open(os.path.join(self.tmp, name), "w") as f:
                if layout == "jsonl":
                    f.write("\n".join(json.dumps(r) for r in records) + "\n\n")
                else:
                    json.dump(records, f)

    def test_formats_are_detected_and_read(self):
        self.write_datasets()
        for name, (_, _, expected) in DATASETS.items():
            prompts = load_prompt_file(os.path.join(self.tmp, name), "auto", "dataset")
            self.assertEqual(prompts, expected, name)
        # an explicit format that does not fit finds nothing, and says so
        with self.assertRaisesRegex(JobError, "no gsm8k-format prompts found"):
            load_prompt_file(os.path.join(self.tmp, "alpaca.jsonl"), "gsm8k", "dataset")
        with open(os.path.join(self.tmp, "odd.jsonl"), "w") as f:
            f.write('{"text": "x"}\n')
        with self.assertRaisesRegex(JobError, r"cannot tell the format .*\['text'\]"):
            load_prompt_file(os.path.join(self.tmp, "odd.jsonl"), "auto", "dataset")
        with open(os.path.join(self.tmp, "broken.jsonl"), "w") as f:
            f.write('{"prompt": "fine"}\n{"prompt": oops}\n')
        with self.assertRaisesRegex(JobError, "line 2, is not valid JSON"):
            load_prompt_file(os.path.join(self.tmp, "broken.jsonl"), "auto", "dataset")

    def test_run_with_each_format(self):
        self.write_datasets()
        points = []
        for name in DATASETS:
            fmt = "auto" if name != "gsm8k.json" else "gsm8k"
            points.append(http_point(name, concurrency=2, num_prompts=3, max_tokens=3,
                                     dataset={"kind": "file", "path": name, "format": fmt}))
        result = self.run_agent(self.make_job(points, telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        for name, (_, _, expected) in DATASETS.items():
            requests = sorted(self.of_type(events, "request", point=name), key=lambda r: r["i"])
            self.assertEqual(len(requests), 3)
            # the sim server counts whitespace words: the prompts sent were the file's, reused in order
            wanted = [len(expected[n % len(expected)].split()) for n in range(3)]
            self.assertEqual([r["prompt_tokens"] for r in requests], wanted, name)
            self.assertTrue(all(r["ok"] and r["output_tokens"] == 3 for r in requests))

    def test_synthetic_lengths_follow_distributions(self):
        rng = random.Random(3)
        dist = LengthDist("normal", 100.0, 20.0, 50, 130)
        draws = [dist.draw(rng) for _ in range(2000)]
        self.assertTrue(all(50 <= d <= 130 for d in draws))
        self.assertAlmostEqual(sum(draws) / len(draws), 99, delta=3)
        lognormal = LengthDist("lognormal", 200.0, 100.0)
        draws = [lognormal.draw(rng) for _ in range(4000)]
        self.assertAlmostEqual(sum(draws) / len(draws), 200, delta=12)
        uniform = LengthDist("uniform", 0.0, 0.0, 10, 20)
        self.assertEqual({uniform.draw(rng) for _ in range(500)}, set(range(10, 21)))
        text = synthetic_text(rng, 37)
        self.assertEqual(len(text.split()), 37)


class BadInputTest(AgentTestCase):
    def assert_job_error(self, result, *parts):
        self.assertEqual(result.returncode, 1, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        error = self.of_type(events, "error")[0]
        self.assertEqual((error["where"], error["fatal"]), ("job", True))
        for part in parts:
            self.assertIn(part, error["message"])
        self.assertEqual(self.done(events)["status"], "error")
        self.assertEqual(self.state(result.run_dir)["status"], "error")
        return error

    def test_garbled_json(self):
        result = self.run_agent(None, raw='{"v": 1, "run_id": "x", "points": [')
        self.assert_job_error(result, "is not valid JSON", "line 1")

    def test_wrong_field_type_is_named(self):
        job = self.make_job([http_point("p", concurrency="eight")])
        error = self.assert_job_error(self.run_agent(job), "points[0].workload.concurrency",
                                      'expected a whole number, got "eight"')
        self.assertIn("job file /", error["message"])

    def test_missing_and_conflicting_fields(self):
        job = self.make_job([http_point("p")])
        del job["run_id"]
        self.assert_job_error(self.run_agent(job), "run_id: required field is missing")
        job = self.make_job([http_point("p", request_rate=2.0)])
        self.assert_job_error(self.run_agent(job), "set exactly one of concurrency and request_rate")
        job = self.make_job([http_point("p")], telemetry={"source": "gpu"})
        self.assert_job_error(self.run_agent(job), "telemetry.source: must be one of auto, nvml")
        job = self.make_job([http_point("p", dataset={"kind": "file", "path": "missing.jsonl"})])
        self.assert_job_error(self.run_agent(job), "points[0].workload.dataset.path", "missing.jsonl")
        job = self.make_job([http_point("p")], sim=None)
        self.assert_job_error(self.run_agent(job), "sim: a SimProfile is required")

    def test_unwritable_run_dir(self):
        blocker = os.path.join(self.tmp, "a-file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        job_path = self.write_job(self.make_job([]))
        out = self.run_tool("run", "--job", job_path, "--run-dir", os.path.join(blocker, "run"))
        self.assertEqual(out.returncode, 2)
        self.assertIn("cannot write the run directory", out.stderr)
        event = json.loads(out.stdout)
        self.assertEqual((event["type"], event["where"], event["fatal"]), ("error", "run_dir", True))

    def test_bad_cap_is_a_point_error_not_a_crash(self):
        points = [http_point("too-low", power_cap_w=20, num_prompts=2), http_point("fine", num_prompts=2)]
        result = self.run_agent(self.make_job(points, telemetry={"source": "sim", "idle_baseline_s": 0}))
        self.assertEqual(result.returncode, 0, result.stderr)
        events = self.events(result.run_dir)
        self.assert_well_formed(events)
        error = self.of_type(events, "error")[0]
        self.assertEqual((error["where"], error["fatal"], error["point"]), ("cap", False, "too-low"))
        self.assertIn("outside GPU 0's range 100-400 W", error["message"])
        ends = {e["point"]: e["status"] for e in self.of_type(events, "point", state="end")}
        self.assertEqual(ends, {"too-low": "error", "fine": "ok"})
        self.assertFalse(os.path.exists(self.caps_file()))
