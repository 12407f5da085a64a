/** Runs on a real (one-machine) Slurm cluster through a login node reached over real SSH. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import type { AgentEvent } from '../../src/core/protocol/events';
import { SlurmRun } from '../../src/core/run/slurm';
import { readEventsSync, RunStore } from '../../src/core/store/store';
import { SshTransport } from '../../src/core/transport/ssh';
import { AGENT, simConfig, testLogger, waitFor } from './helpers';
import { startSlurm, type SlurmCluster } from './slurm';
import { startSshLab, type SshLab } from './sshd';

describe('Slurm', { concurrency: false }, () => {
  let cluster: SlurmCluster;
  let lab: SshLab;
  const transports: SshTransport[] = [];
  before(async () => {
    cluster = await startSlurm(2);
    lab = await startSshLab([{ alias: 'login', address: '127.0.0.6', env: { SLURM_CONF: cluster.conf } }]);
  });
  after(async () => {
    for (const t of transports) t.close();
    await lab?.stop();
    await cluster?.stop();
  });

  function slurmRun(slurmYaml: string, extra: Parameters<typeof simConfig>[0] = {}) {
    const text = simConfig({ name: 'slurm-itest', ...extra }).replace('target: local', `target:\n  slurm:\n${slurmYaml}`);
    const loaded = loadConfig(text);
    assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
    if (loaded.config.target.kind !== 'slurm') throw new Error('expected a Slurm target');
    const slurm = loaded.config.target.slurm;
    const transport = SshTransport.forHost('login', { configPath: lab.sshConfig, home: lab.home });
    transports.push(transport);
    const events: AgentEvent[] = [];
    const log: string[] = [];
    const run = new SlurmRun({
      store: RunStore.forWorkspace(mkdtempSync(join(tmpdir(), 'wb-slurm-ws-'))),
      transport,
      slurm,
      agentSource: AGENT,
      configText: text,
      config: loaded.config,
      points: loaded.points,
      resolveLocal: (p) => p,
      logger: testLogger(log),
      pollMs: 500,
      listener: { onEvent: (e) => events.push(e) },
    });
    return { run, events, log };
  }

  it('submits, follows and collects a job, with every node\'s energy in the store', async () => {
    const { run, log } = slurmRun('    login: login\n    partition: debug\n    nodes: 1\n    gpus_per_node: 2\n    time_limit: 10m\n    setup: ["echo setting up the environment"]');
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok', log.join('\n'));
    const meta = run.writer.meta;
    assert.match(meta.slurm?.job_id ?? '', /^\d+$/);
    assert.equal(meta.slurm?.state, 'COMPLETED');
    assert.equal(typeof meta.slurm?.queue_wait_s, 'number');
    const script = readFileSync(join(run.writer.dir, 'sbatch.sh'), 'utf8');
    assert.match(script, /#SBATCH --gres=gpu:2/);
    assert.match(script, /#SBATCH --partition=debug/);
    assert.match(script, /#SBATCH --time=00:10:00/);
    assert.match(script, /srun --nodes="\$SLURM_JOB_NUM_NODES" --ntasks-per-node=1/);
    assert.match(readFileSync(join(run.writer.dir, `slurm-${meta.slurm!.job_id}.out`), 'utf8'), /setting up the environment/);
    const events = readEventsSync(run.writer.dir);
    assert.ok(events.every((e) => e.node === 'node-0'), 'events are tagged with their node');
    for (const p of outcome.summary.points) {
      assert.equal(p.requests.ok, 6);
      assert.deepEqual(p.energy.per_gpu.map((g) => g.gpu), ['node-0:0', 'node-0:1'], 'energy per node and GPU');
      assert.ok(p.energy.total_j > 0);
      assert.equal(p.energy.per_gpu.reduce((s, g) => s + g.energy_j, 0).toFixed(6), p.energy.total_j.toFixed(6), 'the total is the sum over every node\'s GPUs');
    }
  });

  it('samples every node of a two-node job: node 0 runs the benchmark, node 1 only samples, and each point counts both', async () => {
    const { run, log } = slurmRun('    login: login\n    nodes: 2\n    gpus_per_node: 2', { sweep: '  concurrency: [2]' });
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok', `${log.join('\n')}\n${run.writer.meta.error}`);
    assert.deepEqual(run.writer.meta.slurm?.nodes, ['node0', 'node1']);
    const events = readEventsSync(run.writer.dir);
    assert.deepEqual([...new Set(events.map((e) => e.node))].sort(), ['node-0', 'node-1']);
    const fromNode1 = new Set(events.filter((e) => e.node === 'node-1').map((e) => e.type));
    assert.deepEqual([...fromNode1].sort(), ['done', 'hello', 'sample'], 'node 1 only samples');
    const [point] = outcome.summary.points;
    assert.equal(point.requests.ok, 6);
    assert.deepEqual(point.energy.per_gpu.map((g) => g.gpu), ['node-0:0', 'node-0:1', 'node-1:0', 'node-1:1'], 'every GPU of the allocation');
    assert.ok(point.energy.per_gpu.every((g) => g.energy_j > 0));
    assert.deepEqual(Object.keys(outcome.summary.idle_baseline?.per_gpu_w ?? {}).sort(), ['node-0:0', 'node-0:1', 'node-1:0', 'node-1:1']);
  });

  it('runs the example Slurm config end to end', async () => {
    const example = readFileSync(join(__dirname, '..', '..', 'examples', 'slurm-sim.wattbench.yaml'), 'utf8').replace('login: slurm-login', 'login: login');
    const loaded = loadConfig(example);
    assert.ok(loaded.config && loaded.config.target.kind === 'slurm', JSON.stringify(loaded.diagnostics));
    const transport = SshTransport.forHost('login', { configPath: lab.sshConfig, home: lab.home });
    transports.push(transport);
    const run = new SlurmRun({
      store: RunStore.forWorkspace(mkdtempSync(join(tmpdir(), 'wb-slurm-ex-'))),
      transport,
      slurm: loaded.config.target.slurm,
      agentSource: AGENT,
      configText: example,
      config: loaded.config,
      points: loaded.points,
      resolveLocal: (p) => p,
      pollMs: 500,
    });
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok', run.writer.meta.error);
    assert.equal(outcome.summary.points.length, 2);
    assert.ok(outcome.summary.points.every((p) => p.energy.per_gpu.length === 2 && p.energy.total_j > 0));
  });

  it('follows a job again after a restart, from every node\'s stored offset, losing nothing', async () => {
    const { run, events } = slurmRun('    login: login\n    nodes: 1', { workload: { num_prompts: 12, concurrency: 1 }, sweep: '  concurrency: [1]' });
    await waitFor(() => events.some((e) => e.type === 'request'), 90_000, 'the job to measure');
    run.detach();
    await run.done.catch(() => undefined);
    const transport = SshTransport.forHost('login', { configPath: lab.sshConfig, home: lab.home });
    transports.push(transport);
    const again = SlurmRun.reattach({ store: (run as unknown as { options: { store: RunStore } }).options.store, runId: run.id, transport, agentSource: AGENT, pollMs: 500 });
    const outcome = await again.done;
    assert.equal(outcome.status, 'ok', again.writer.meta.error);
    assert.equal(outcome.summary.points[0].requests.ok, 12);
    const seqs = readEventsSync(again.writer.dir).map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i), 'node 0\'s events once each, in order');
    assert.ok(again.writer.meta.notes.some((n) => /reattached to Slurm job/.test(n)));
  });

  it('cancels a running job with scancel and keeps what was measured', async () => {
    const { run, events } = slurmRun('    login: login\n    nodes: 1', { workload: { num_prompts: 200, concurrency: 1 }, sweep: '  concurrency: [1]' });
    await waitFor(() => events.some((e) => e.type === 'request'), 90_000, 'the job to measure');
    await run.cancel();
    const outcome = await run.done;
    assert.equal(outcome.status, 'cancelled');
    assert.equal(run.writer.meta.slurm?.state, 'CANCELLED');
    assert.ok(readEventsSync(run.writer.dir).some((e) => e.type === 'request'));
  });

  it('restores the limits on the node when its agent is killed with -9 mid-job', async () => {
    const { run, events } = slurmRun('    login: login\n    nodes: 1', { workload: { num_prompts: 200, concurrency: 1 }, sweep: '  power_cap_w: [280W]' });
    await waitFor(() => events.some((e) => e.type === 'cap' && e.action === 'set'), 90_000, 'the job to cap its GPUs');
    const limitsFile = join(lab.hosts.get('login')!.home, 'sim', 'limits.json');
    const limits = () => (existsSync(limitsFile) ? JSON.parse(readFileSync(limitsFile, 'utf8')) : {});
    assert.equal(limits()['0'], 280, 'the simulated GPU is capped while the point runs');
    lab.exec('login', `pkill -9 -f '[w]attbench_agent.pyz run --job .*${run.id}'`);
    const outcome = await run.done;
    assert.equal(outcome.status, 'error');
    assert.deepEqual([limits()['0'] ?? 700, limits()['1'] ?? 700], [700, 700], 'the node put its original limits back after its agent died');
    assert.ok(events.some((e) => e.type === 'sample'), 'what was measured before is kept');
  });

  it('reports a job that fails, with its output', async () => {
    const { run } = slurmRun('    login: login\n    nodes: 1\n    setup: ["echo module load cuda/99 failed >&2", "exit 3"]');
    const outcome = await run.done;
    assert.equal(outcome.status, 'error');
    assert.match(run.writer.meta.error ?? '', /ended FAILED \(exit 3:0.*module load cuda\/99 failed/);
  });

  it('reports a job that runs out of time, keeping what it measured', async () => {
    const { run, events } = slurmRun('    login: login\n    nodes: 1\n    time_limit: 8s', { workload: { num_prompts: 400, concurrency: 1 }, sweep: '  concurrency: [1]' });
    const outcome = await run.done;
    assert.equal(outcome.status, 'error');
    assert.match(run.writer.meta.error ?? '', /ran out of time/);
    assert.equal(run.writer.meta.slurm?.state, 'TIMEOUT');
    assert.ok(events.some((e) => e.type === 'sample'), 'samples before the limit are kept');
    assert.ok(existsSync(join(run.writer.dir, 'events.ndjson')));
  });

  it('says why sbatch refused a job', async () => {
    const { run } = slurmRun('    login: login\n    nodes: 1\n    gpus_per_node: 8');
    await assert.rejects(run.done, /sbatch on login .* refused the job: .*(Requested node configuration is not available|Invalid generic resource)/);
    assert.equal(run.writer.meta.status, 'error');
  });
});
