"""A full disk while the run writes its events: the limits still come back, the caps file goes, the server
is stopped and state.json does not stay `running`."""

import json
import os
import shutil
import subprocess

from .helpers import AgentTestCase, http_point
from .test_events import mount_tmpfs, umount_tmpfs

from wattbench_agent.caps import caps_file_path
from wattbench_agent.events import TEST_ENOSPC_ENV
from wattbench_agent.util import group_alive


def long_capped_point(cap_w):
    # Far more work than the disk has room for the events of.
    return http_point("long", power_cap_w=cap_w, concurrency=2, num_prompts=500, max_tokens=200,
                      dataset={"kind": "synthetic", "input_tokens": {"dist": "fixed", "mean": 8},
                               "output_tokens": {"dist": "fixed", "mean": 200}})


class DiskFullTest(AgentTestCase):
    def job(self):
        return self.make_job([long_capped_point(150)],
                             telemetry={"source": "sim", "interval_s": 0.02, "idle_baseline_s": 0})

    def caps_file(self):
        return os.path.join(self.home, "caps-saved", os.path.basename(caps_file_path()))

    def run_until_exit(self, run_dir, env):
        job_path = self.write_job(self.job())
        with open(os.path.join(self.tmp, "agent-stderr.txt"), "w") as stderr:
            proc = subprocess.Popen(self.agent_command("run", "--job", job_path, "--run-dir", run_dir), env=env,
                                    stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        self._procs.append(proc)
        try:
            return proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.fail("the agent did not end after the disk filled")

    def assert_left_as_found(self, run_dir):
        events = []
        with open(os.path.join(run_dir, "events.ndjson"), "rb") as f:
            lines = f.read().split(b"\n")
        for line in lines[:-1]:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by the full disk
        self.assertTrue(self.of_type(events, "cap", action="set"), "the disk filled before the cap was set")
        self.assertEqual(self.sim_limits(), {"0": 400.0, "1": 400.0}, "the power limits stayed capped")
        self.assertFalse(os.path.exists(self.caps_file()), "the saved-caps file stayed")
        state = self.state(run_dir)
        self.assertIsNotNone(state.get("server_pgid"))
        self.assertFalse(group_alive(state["server_pgid"]), "the server outlived the agent")
        self.assertEqual(state["status"], "error")
        self.assertIsNotNone(state["ended"])
        return events

    def test_events_that_cannot_be_written_stop_the_run_and_everything_is_put_back(self):
        # The event file turns full after 150 events (one short write, then ENOSPC), mid-measure.
        run_dir = self.new_run_dir()
        os.makedirs(run_dir)
        env = dict(self.env, **{TEST_ENOSPC_ENV: "150"})
        self.assertEqual(self.run_until_exit(run_dir, env), 1)
        events = self.assert_left_as_found(run_dir)
        self.assertEqual(len(events), 150)
        self.assertFalse(self.of_type(events, "done"))
        with open(os.path.join(run_dir, "agent.log")) as f:
            log = f.read()
        self.assertIn("cannot write the event file", log)
        self.assertIn("No space left on device", log)

    def test_a_real_full_file_system(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        mount = os.path.join(self.tmp, "small-fs")
        os.makedirs(mount)
        if not mount_tmpfs(mount, "200k"):
            self.skipTest("cannot mount a tmpfs here")
        self._mount = mount
        # Leave ~100 KiB: the run's small files and its first events fit, the measure's do not.
        st = os.statvfs(mount)
        with open(os.path.join(mount, "filler"), "wb") as f:
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 100 * 1024))
        run_dir = os.path.join(mount, "run")
        self._run_dirs.append(run_dir)
        os.makedirs(run_dir)
        self.assertEqual(self.run_until_exit(run_dir, self.env), 1)
        self.assert_left_as_found(run_dir)
        st = os.statvfs(mount)
        self.assertLess(st.f_bavail * st.f_frsize, 8192, "the file system never filled up")

    _mount = None

    def tearDown(self):
        super().tearDown()  # stops what the agent left (it reads state.json in the run dir, still mounted)
        if self._mount:
            umount_tmpfs(self._mount)
        shutil.rmtree(self.tmp, ignore_errors=True)
