"""The shipped artefact: scripts/build_agent.py makes the same wattbench_agent.pyz every time, the archive runs
on its own, the sources run too (python3 -m wattbench_agent, python3 agent/wattbench_agent), and the package's
modules import each other without cycles."""

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

from .helpers import AGENT, AGENT_DIR, BUILDER, PACKAGE_DIR, SIM_PROFILE_PATH, AgentTestCase, build_archive, http_point

from wattbench_agent.version import AGENT_VERSION


def load_builder():
    spec = importlib.util.spec_from_file_location("build_agent", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def package_sources():
    """Names in the archive of the package's .py files, e.g. wattbench_agent/telemetry/sim.py."""
    names = []
    for directory, subdirs, files in os.walk(PACKAGE_DIR):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                names.append(os.path.relpath(os.path.join(directory, name), AGENT_DIR).replace(os.sep, "/"))
    return sorted(names)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class ArchiveBuildTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wattbench-agent-build-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_two_builds_are_byte_identical(self):
        first = build_archive(os.path.join(self.tmp, "one", "wattbench_agent.pyz"))
        second = build_archive(os.path.join(self.tmp, "two", "other-name.pyz"))
        self.assertEqual(read(first), read(second))
        self.assertEqual(read(first), read(AGENT))
        # Sources with other timestamps, next to bytecode and stray files, still give the same bytes.
        copy = os.path.join(self.tmp, "src", "wattbench_agent")
        shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
        for directory, _, files in os.walk(copy):
            for name in files:
                os.utime(os.path.join(directory, name), (1234567890, 1234567890))
        os.makedirs(os.path.join(copy, "__pycache__"))
        with open(os.path.join(copy, "__pycache__", "run.cpython-311.pyc"), "wb") as f:
            f.write(b"not to be shipped")
        with open(os.path.join(copy, "notes.txt"), "w") as f:
            f.write("not to be shipped")
        third = os.path.join(self.tmp, "three.pyz")
        self.assertEqual(load_builder().build(third, copy), read(first))
        self.assertEqual(read(third), read(first))

    def test_layout(self):
        data = read(AGENT)
        self.assertTrue(data.startswith(b"#!/usr/bin/env python3\n"))
        with zipfile.ZipFile(AGENT) as archive:
            self.assertIsNone(archive.testzip())
            infos = archive.infolist()
            names = [i.filename for i in infos]
            self.assertEqual(names, sorted(names))
            self.assertEqual(names, ["__main__.py"] + package_sources())
            for info in infos:
                self.assertEqual(info.date_time, (1980, 1, 1, 0, 0, 0), info.filename)
                self.assertEqual(info.external_attr, 0o100644 << 16, info.filename)
                self.assertEqual(info.compress_type, zipfile.ZIP_STORED, info.filename)
                self.assertEqual(info.extra, b"", info.filename)
            for name in package_sources():
                self.assertEqual(archive.read(name), read(os.path.join(AGENT_DIR, name)), name)
            self.assertIn(b"from wattbench_agent.__main__ import main", archive.read("__main__.py"))


class ArchiveRunsTest(AgentTestCase):
    def test_archive_runs_on_its_own(self):
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.makedirs(elsewhere)
        shipped = os.path.join(elsewhere, "wattbench_agent.pyz")
        shutil.copy(AGENT, shipped)  # as installed on a host: the archive alone, far from the sources
        env = dict(self.env)
        env.pop("PYTHONPATH", None)

        def agent(*args):
            return subprocess.run([sys.executable, shipped] + list(args), cwd=elsewhere, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)

        out = agent("--help")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("usage: wattbench_agent.pyz", out.stdout)
        for command in ("run", "sample", "restore-caps", "probe", "sim-server", "sim-truth", "list-runs"):
            self.assertIn(command, out.stdout)
        out = agent("--version")
        self.assertEqual(out.stdout.strip(), AGENT_VERSION)
        out = agent("probe", "--source", "sim", "--profile", SIM_PROFILE_PATH, "--sim-dir", self.sim_dir)
        self.assertEqual(out.returncode, 0, out.stderr)
        hello = json.loads(out.stdout)
        self.assertEqual((hello["type"], hello["simulated"], hello["agent_version"]), ("hello", True, AGENT_VERSION))
        self.assertEqual(len(hello["gpus"]), 2)
        # The agent knows the file it runs from (it starts its sim server with it).
        out = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); "
                              "from wattbench_agent.version import AGENT_FILE; print(AGENT_FILE)" % shipped],
                             env=env, stdout=subprocess.PIPE, universal_newlines=True, timeout=30, check=True)
        self.assertEqual(out.stdout.strip(), shipped)

    def test_sources_run_as_a_package(self):
        env = dict(self.env, PYTHONPATH=AGENT_DIR)
        out = subprocess.run([sys.executable, "-m", "wattbench_agent", "probe", "--source", "sim", "--profile",
                              SIM_PROFILE_PATH, "--sim-dir", self.sim_dir], cwd=self.tmp, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["type"], "hello")
        out = subprocess.run([sys.executable, PACKAGE_DIR, "--version"], cwd=self.tmp, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
        self.assertEqual((out.returncode, out.stdout.strip()), (0, AGENT_VERSION), out.stderr)
        from wattbench_agent.version import AGENT_FILE
        self.assertEqual(AGENT_FILE, PACKAGE_DIR)
        # A sim run from the sources starts its sim server from the package's directory.
        job_path = self.write_job(self.make_job([http_point("p", num_prompts=2)],
                                                telemetry={"source": "sim", "idle_baseline_s": 0}))
        run_dir = self.new_run_dir()
        done = subprocess.run([sys.executable, "-m", "wattbench_agent", "run", "--job", job_path, "--run-dir", run_dir],
                              cwd=self.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        events = self.events(run_dir)
        self.assert_well_formed(events)
        self.assertEqual(self.done(events)["status"], "ok")
        self.assertEqual(len(self.of_type(events, "request", ok=True)), 2)
        with open(os.path.join(run_dir, "server.log")) as f:
            self.assertIn("SIMULATED", f.read())


class ModuleStructureTest(unittest.TestCase):
    """Each module imports names from the module that defines them, and no two modules import each other
    round a cycle: util and version import nothing of the package, telemetry nothing of the run."""

    @staticmethod
    def modules():
        """{dotted name: (syntax tree, is a package)} of every module of the package."""
        found = {}
        for directory, subdirs, files in os.walk(PACKAGE_DIR):
            subdirs[:] = [d for d in subdirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    parts = os.path.relpath(path, AGENT_DIR)[:-len(".py")].split(os.sep)
                    is_package = parts[-1] == "__init__"
                    if is_package:
                        parts.pop()
                    with open(path) as f:
                        found[".".join(parts)] = (ast.parse(f.read()), is_package)
        return found

    def imports(self):
        """({module: {imported module of the package: {names}}}, modules())."""
        graph = {}
        modules = self.modules()
        for module, (tree, is_package) in modules.items():
            package = module.split(".") if is_package else module.split(".")[:-1]
            edges = graph.setdefault(module, {})
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package[:len(package) - node.level + 1]
                        target = ".".join(base + ([node.module] if node.module else []))
                    else:
                        target = node.module or ""
                    if target.split(".")[0] == "wattbench_agent":
                        edges.setdefault(target, set()).update(a.name for a in node.names)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        self.assertNotEqual(alias.name.split(".")[0], "wattbench_agent", module)
        return graph, modules

    def test_imports_come_from_their_owner_and_form_no_cycle(self):
        graph, modules = self.imports()
        self.assertIn("wattbench_agent.telemetry.sim", graph)
        for module, edges in graph.items():
            for target, names in edges.items():
                self.assertIn(target, modules, "%s imports the unknown module %s" % (module, target))
                tree = modules[target][0]
                defined = set()
                for node in tree.body:
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        defined.add(node.name)
                    elif isinstance(node, ast.Assign):
                        defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
                for name in names:
                    self.assertIn(name, defined, "%s imports %s from %s, which does not define it"
                                  % (module, name, target))
        self.assertEqual(graph["wattbench_agent.util"], {})
        self.assertEqual(graph["wattbench_agent.version"], {})
        for module, edges in graph.items():
            if module.startswith("wattbench_agent.telemetry"):
                self.assertNotIn("wattbench_agent.run", edges, module)
                self.assertNotIn("wattbench_agent.__main__", edges, module)

        def visit(module, path):
            self.assertNotIn(module, path, "import cycle: %s" % " -> ".join(path + [module]))
            for target in graph.get(module, {}):
                visit(target, path + [module])

        for module in graph:
            visit(module, [])


if __name__ == "__main__":
    unittest.main()
