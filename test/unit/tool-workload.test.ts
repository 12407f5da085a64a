/**
 * `workload.tool`: the config's tool reaches the agent's job as a `kind: 'tool'` workload with its own
 * arguments, and the two ways of getting it wrong are diagnosed where they were written.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import { buildJob, type AgentJob } from '../../src/core/run/job';

/** The simulated server needs a model and GPU it knows. */
const HEAD = ['name: tools', 'model: { id: meta-llama/Llama-3.1-8B-Instruct }',
  'gpus: { type: H100-SXM-80GB, count: 1 }'];

function load(workload: string, extra: string[] = []) {
  return loadConfig([...HEAD, 'server: { sim: true }', `workload: ${workload}`, ...extra].join('\n'));
}

function jobOf(workload: string, extra: string[] = []): AgentJob {
  const loaded = load(workload, extra);
  assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
  return buildJob('tools', loaded.config, loaded.points, (p) => p).job;
}

const codesOf = (workload: string) => load(workload).diagnostics.map((d) => `${d.severity}:${d.code}`);

describe('workload.tool in the job', () => {
  it('each tool becomes a kind: tool workload carrying its name and its arguments in order, and no command', () => {
    for (const tool of ['vllm-bench', 'guidellm', 'aiperf'] as const) {
      const args = ['--max-requests', '6', '--data', 'prompt_tokens=8,output_tokens=16'];
      const job = jobOf(`{ tool: ${tool}, tool_args: ${JSON.stringify(args)} }`);
      assert.equal(job.points.length, 1);
      const w = job.points[0]!.workload;
      assert.equal(w.kind, 'tool', tool);
      assert.equal(w.tool, tool);
      assert.deepEqual(w.tool_args, args);
      assert.equal(w.command, null);
    }
  });

  it('a tool without tool_args sends an empty list; a plain workload has neither field', () => {
    assert.deepEqual(jobOf('{ tool: aiperf }').points[0]!.workload.tool_args, []);
    const plain = jobOf('{ num_prompts: 4, concurrency: 1 }').points[0]!.workload;
    assert.equal(plain.kind, 'http');
    assert.equal('tool' in plain, false);
    assert.equal('tool_args' in plain, false);
    assert.equal(jobOf('{ command: "echo hi" }').points[0]!.workload.kind, 'command');
  });

  it('every sweep point runs the same tool', () => {
    const args = ['--profile', 'synchronous'];
    const job = jobOf(`{ tool: guidellm, tool_args: ${JSON.stringify(args)} }`, ['sweep: { power_cap_w: [200, 300] }']);
    assert.equal(job.points.length, 2);
    for (const { workload: w } of job.points) {
      assert.deepEqual([w.kind, w.tool, w.tool_args], ['tool', 'guidellm', args]);
    }
  });

  it('a name outside vllm-bench | guidellm | aiperf is not a tool', () => {
    const diagnostics = load('{ tool: genai-perf }').diagnostics;
    const onTool = diagnostics.filter((d) => d.severity === 'error' && d.path.join('.').startsWith('workload.tool'));
    assert.equal(onTool.length > 0, true, JSON.stringify(diagnostics));
  });
});

describe('workload.tool diagnostics', () => {
  it('tool and command together: an error on workload.tool', () => {
    const loaded = load('{ tool: vllm-bench, command: "python bench.py" }');
    const d = loaded.diagnostics.find((x) => x.code === 'tool-and-command');
    assert.ok(d, JSON.stringify(loaded.diagnostics));
    assert.equal(d.severity, 'error');
    assert.deepEqual(d.path, ['workload', 'tool']);
    assert.equal(codesOf('{ tool: vllm-bench }').includes('error:tool-and-command'), false);
    assert.equal(codesOf('{ command: "python bench.py" }').includes('error:tool-and-command'), false);
  });

  it('tool_args without a tool: a warning on workload.tool_args, not raised once a tool is named', () => {
    const loaded = load('{ tool_args: ["--num-prompts", "5"] }');
    const d = loaded.diagnostics.find((x) => x.code === 'tool-args-without-tool');
    assert.ok(d, JSON.stringify(loaded.diagnostics));
    assert.equal(d.severity, 'warning');
    assert.deepEqual(d.path, ['workload', 'tool_args']);
    const raised = (workload: string) => codesOf(workload).some((c) => c.endsWith(':tool-args-without-tool'));
    assert.equal(raised('{ tool: vllm-bench, tool_args: ["--num-prompts", "5"] }'), false);
    assert.equal(raised('{ tool_args: [] }'), false);
  });
});
