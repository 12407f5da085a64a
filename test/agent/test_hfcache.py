"""`hf-configs` (agent/wattbench_agent/hfcache.py): the models in this host's Hugging Face cache, read from a temp
cache laid out as huggingface_hub writes it (blobs/, snapshots/<rev>/config.json linking to them, refs/main).
The config.json files are real ones (test/fixtures/models/SOURCE.md); expected values come from them."""

import json
import os
import subprocess
import time

from test.agent.helpers import REPO, AgentTestCase

FIXTURES = os.path.join(REPO, "test", "fixtures", "models")


def fixture(name):
    # type: (str) -> str
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


QWEN3_14B = fixture("Qwen--Qwen3-14B.config.json")
QWEN25_7B = fixture("Qwen--Qwen2.5-7B.config.json")


class HfConfigsTest(AgentTestCase):
    def setUp(self):
        super().setUp()
        self.cache = os.path.join(self.tmp, "hf", "hub")
        os.makedirs(self.cache)

    def snapshot(self, repo_id, revision, text, mtime=None):
        # type: (str, str, str, float) -> str
        repo = os.path.join(self.cache, "models--" + repo_id.replace("/", "--"))
        os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
        os.makedirs(os.path.join(repo, "snapshots", revision), exist_ok=True)
        blob = os.path.join(repo, "blobs", "blob-" + revision)
        with open(blob, "w") as f:
            f.write(text)
        if mtime is not None:
            os.utime(blob, (mtime, mtime))
        link = os.path.join(repo, "snapshots", revision, "config.json")
        os.symlink(os.path.join("..", "..", "blobs", "blob-" + revision), link)
        return link

    def refs_main(self, repo_id, revision):
        # type: (str, str) -> None
        refs = os.path.join(self.cache, "models--" + repo_id.replace("/", "--"), "refs")
        os.makedirs(refs, exist_ok=True)
        with open(os.path.join(refs, "main"), "w") as f:
            f.write(revision)

    def hf_configs(self, env_extra):
        # type: (dict) -> dict
        env = dict(self.env)
        for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
            env.pop(key, None)
        env.update(env_extra)
        done = subprocess.run(self.agent_command("hf-configs"), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.strip().split("\n")
        self.assertEqual(len(lines), 1, "one JSON line")
        return json.loads(lines[0])

    def test_lists_models_with_their_config_preferring_refs_main(self):
        now = time.time()
        main = self.snapshot("Qwen/Qwen3-14B", "aaaa", QWEN3_14B, mtime=now - 3600)
        self.snapshot("Qwen/Qwen3-14B", "bbbb", QWEN25_7B, mtime=now)  # newer, but not what main names
        self.refs_main("Qwen/Qwen3-14B", "aaaa")
        self.snapshot("Qwen/Qwen2.5-7B", "old1", QWEN3_14B, mtime=now - 7200)
        newest = self.snapshot("Qwen/Qwen2.5-7B", "new2", QWEN25_7B, mtime=now)  # no refs/main: the newest wins
        os.makedirs(os.path.join(self.cache, "datasets--someone--data", "snapshots", "x"))  # not a model
        os.makedirs(os.path.join(self.cache, "models--empty--repo", "snapshots"))  # no snapshot with a config

        report = self.hf_configs({"HF_HUB_CACHE": self.cache})
        self.assertEqual(report["cache_dir"], self.cache)
        by_id = {m["id"]: m for m in report["models"]}
        self.assertEqual(sorted(by_id), ["Qwen/Qwen2.5-7B", "Qwen/Qwen3-14B"])
        self.assertEqual(by_id["Qwen/Qwen3-14B"]["revision"], "aaaa")
        self.assertEqual(by_id["Qwen/Qwen3-14B"]["path"], main)
        self.assertEqual(by_id["Qwen/Qwen3-14B"]["config"], json.loads(QWEN3_14B))
        self.assertEqual(by_id["Qwen/Qwen2.5-7B"]["revision"], "new2")
        self.assertEqual(by_id["Qwen/Qwen2.5-7B"]["path"], newest)
        self.assertEqual(by_id["Qwen/Qwen2.5-7B"]["config"]["hidden_size"], json.loads(QWEN25_7B)["hidden_size"])

    def test_cache_location_from_hf_home_and_the_default(self):
        hf_home = os.path.join(self.tmp, "hf")  # self.cache is hf/hub
        self.snapshot("Qwen/Qwen3-14B", "r", QWEN3_14B)
        self.assertEqual(self.hf_configs({"HF_HOME": hf_home})["cache_dir"], self.cache)
        home = os.path.join(self.tmp, "user")
        report = self.hf_configs({"HOME": home})
        self.assertEqual(report["cache_dir"], os.path.join(home, ".cache", "huggingface", "hub"))
        self.assertEqual(report["models"], [], "an absent cache is an empty list, not an error")

    def test_oversized_or_broken_config_is_named_not_read(self):
        self.snapshot("big/model", "r", "{" + " " * (300 * 1024) + "}")
        self.snapshot("broken/model", "r", "{not json")
        by_id = {m["id"]: m for m in self.hf_configs({"HF_HUB_CACHE": self.cache})["models"]}
        self.assertNotIn("config", by_id["big/model"])
        self.assertIn("cap", by_id["big/model"]["error"])
        self.assertNotIn("config", by_id["broken/model"])
        self.assertIn("cannot read", by_id["broken/model"]["error"])

    def test_a_run_records_the_cache_in_its_run_dir(self):
        self.snapshot("Qwen/Qwen3-14B", "r", QWEN3_14B)
        env = dict(self.env, HF_HUB_CACHE=self.cache)
        result = self.run_agent(self.make_job([]), env=env)
        with open(os.path.join(result.run_dir, "hf-configs.json")) as f:
            recorded = json.load(f)
        self.assertEqual([m["id"] for m in recorded["models"]], ["Qwen/Qwen3-14B"])
        self.assertEqual(recorded["models"][0]["config"], json.loads(QWEN3_14B))
