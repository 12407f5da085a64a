/** A sweep spread over three loopback SSH hosts, one of which goes away mid-sweep. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import type { AgentEvent } from '../../src/core/protocol/events';
import { MultiHostRun } from '../../src/core/run/multihost';
import { runsToReattach } from '../../src/core/run/stored';
import { readEventsSync, RunStore } from '../../src/core/store/store';
import { SshTransport } from '../../src/core/transport/ssh';
import { AGENT, simConfig, testLogger, waitFor } from './helpers';
import { startSshLab, type SshLab } from './sshd';

describe('several hosts', { concurrency: false }, () => {
  let lab: SshLab;
  before(async () => {
    lab = await startSshLab([
      { alias: 'h1', address: '127.0.0.2' },
      { alias: 'h2', address: '127.0.0.3' },
      { alias: 'h3', address: '127.0.0.4' },
    ]);
  });
  after(async () => lab?.stop());

  it('spreads the points over the hosts and survives one host stopping mid-sweep, measuring every point once', async () => {
    const text = simConfig({ name: 'three-hosts', sweep: '  concurrency: [1, 2, 3]\n  max_tokens: [40, 48]', workload: { num_prompts: 5 } }).replace('target: local', 'target: [h1, h2, h3]');
    const loaded = loadConfig(text);
    assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
    assert.equal(loaded.config.target.kind, 'hosts');
    const store = RunStore.forWorkspace(mkdtempSync(join(tmpdir(), 'wb-multi-')));
    const events: AgentEvent[] = [];
    const log: string[] = [];
    const run = new MultiHostRun({
      store,
      hosts: ['h1', 'h2', 'h3'],
      transportFor: (h) => SshTransport.forHost(h, { configPath: lab.sshConfig, home: lab.home, readyTimeoutMs: 3000 }),
      agentSource: AGENT,
      configText: text,
      config: loaded.config,
      points: loaded.points,
      resolveLocal: (p) => p,
      logger: testLogger(log),
      reconnectForMs: 3000,
      maxBackoffMs: 500,
      listener: { onEvent: (e) => events.push(e) },
    });
    await waitFor(() => events.some((e) => e.type === 'request' && e.node === 'h3'), 60_000, 'h3 to be measuring');
    lab.stopHost('h3');
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok', `${log.join('\n')}\n${JSON.stringify(run.writer.meta.notes)}`);
    const summary = outcome.summary;
    assert.deepEqual(summary.points.map((p) => p.point).sort(), loaded.points.map((p) => p.id).sort(), 'every point measured');
    for (const p of summary.points) assert.equal(p.requests.ok, 5, `${p.point} measured once, with all its requests`);
    const hostOf = new Map(run.writer.meta.points.map((p) => [p.id, p.host]));
    for (const p of summary.points) {
      const hosts = [...new Set(p.energy.per_gpu.map((g) => g.gpu.split(':')[0]))];
      assert.deepEqual(hosts, [hostOf.get(p.point)], `${p.point}: only the GPUs of the host that measured it`);
    }
    const stored = readEventsSync(run.writer.dir);
    const pointsByHost = new Map<string, Set<string>>();
    for (const e of stored) if (e.type === 'point' && e.state === 'end') (pointsByHost.get(e.node!) ?? pointsByHost.set(e.node!, new Set()).get(e.node!)!).add(e.point);
    const total = [...pointsByHost.values()].reduce((s, set) => s + set.size, 0);
    assert.equal(total, 6, 'each point appears once in the run');
    assert.ok(pointsByHost.get('h1')?.size && pointsByHost.get('h2')?.size, 'the healthy hosts shared the work');
    assert.ok(run.writer.meta.notes.some((n) => /h3 failed while measuring .*its remaining points go to h1, h2/.test(n)), JSON.stringify(run.writer.meta.notes));
    const attempts = readdirSync(join(run.writer.dir, 'attempts'));
    assert.ok(attempts.some((a) => a.includes('-h3-')), 'the failed attempt\'s data is kept');
    assert.ok(existsSync(join(run.writer.dir, 'summary.json')));
    assert.ok(Object.keys(summary.idle_baseline?.per_gpu_w ?? {}).some((k) => k.startsWith('h1:')), 'per-host GPUs');
  });

  it('a host whose agent is killed with -9 is left as found (limits restored, no server) before its point moves on', async () => {
    const text = simConfig({ name: 'killed-agent', sweep: '  power_cap_w: [280W, 300W]', workload: { num_prompts: 30, concurrency: 1 } }).replace('target: local', 'target: [h1, h2]');
    const loaded = loadConfig(text);
    assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
    const store = RunStore.forWorkspace(mkdtempSync(join(tmpdir(), 'wb-multi-kill-')));
    const events: AgentEvent[] = [];
    const log: string[] = [];
    const limits = (alias: string) => {
      const path = join(lab.hosts.get(alias)!.home, 'sim', 'limits.json');
      const stored: Record<string, number> = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : {};
      return [0, 1].map((i) => stored[String(i)] ?? 700);
    };
    const before = limits('h1');
    const run = new MultiHostRun({
      store, hosts: ['h1', 'h2'], transportFor: (h) => SshTransport.forHost(h, { configPath: lab.sshConfig, home: lab.home, readyTimeoutMs: 3000 }),
      agentSource: AGENT, configText: text, config: loaded.config, points: loaded.points, resolveLocal: (p) => p, logger: testLogger(log),
      listener: { onEvent: (e) => events.push(e) },
    });
    await waitFor(() => events.some((e) => e.type === 'cap' && e.action === 'set' && e.node === 'h1'), 60_000, 'h1 to cap its GPUs');
    const agent = run.writer.meta.remotes.find((r) => r.host === 'h1')!;
    lab.exec('h1', `kill -9 ${agent.pid}`);
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok', `${log.join('\n')}\n${JSON.stringify(run.writer.meta.notes)}`);
    assert.deepEqual(limits('h1'), before, 'the limits h1 was capped to are back to what they were');
    assert.ok(run.writer.meta.notes.some((n) => /h1 failed .*stopped without finishing the point; stopped the server \(process group \d+[^)]*\); power limits: restored/.test(n)), JSON.stringify(run.writer.meta.notes));
    assert.equal(lab.exec('h1', `pgrep -af ${run.id} | grep -v pgrep || true`).trim(), '', 'neither the agent nor its server is left on h1');
    for (const p of outcome.summary.points) assert.equal(p.requests.ok, 30, `${p.point} measured once, in full`);
  });

  it('cancelled while its hosts are still starting, stops the points they then start and leaves nothing running', async () => {
    const text = simConfig({ name: 'cancel-early', sweep: '  concurrency: [1, 2]', workload: { num_prompts: 200 } }).replace('target: local', 'target: [h1, h2]');
    const loaded = loadConfig(text);
    assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
    const store = RunStore.forWorkspace(mkdtempSync(join(tmpdir(), 'wb-multi-cancel-')));
    const run = new MultiHostRun({
      store, hosts: ['h1', 'h2'], agentSource: AGENT, configText: text, config: loaded.config, points: loaded.points, resolveLocal: (p) => p,
      transportFor: (h) => SshTransport.forHost(h, { configPath: lab.sshConfig, home: lab.home, readyTimeoutMs: 3000 }),
    });
    await run.cancel(); // the hosts are still installing the agent: nobody is followed yet
    const outcome = await run.done;
    assert.equal(outcome.status, 'cancelled');
    for (const p of outcome.summary.points) assert.ok(p.requests.ok < 200, `${p.point} was stopped, not run to its end (${p.requests.ok} requests)`);
    for (const h of ['h1', 'h2']) assert.equal(lab.exec(h, `pgrep -af ${run.id} | grep -v pgrep || true`).trim(), '', `nothing of the run is left on ${h}`);
  });

  it('is left running when the window goes away and resumed after, following the points in flight instead of restarting them', async () => {
    const text = simConfig({ name: 'resumed-hosts', sweep: '  concurrency: [1, 2, 3, 4]', workload: { num_prompts: 6 } }).replace('target: local', 'target: [h1, h2]');
    const loaded = loadConfig(text);
    assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
    const store = RunStore.forWorkspace(mkdtempSync(join(tmpdir(), 'wb-multi-resume-')));
    const transportFor = (h: string) => SshTransport.forHost(h, { configPath: lab.sshConfig, home: lab.home, readyTimeoutMs: 3000 });
    const before: AgentEvent[] = [];
    const first = new MultiHostRun({
      store, hosts: ['h1', 'h2'], transportFor, agentSource: AGENT, configText: text, config: loaded.config, points: loaded.points,
      resolveLocal: (p) => p, listener: { onEvent: (e) => before.push(e) },
    });
    await waitFor(() => ['h1', 'h2'].every((h) => before.some((e) => e.type === 'request' && e.node === h)), 60_000, 'both hosts measuring');
    first.detach();
    const left = await first.done;
    assert.equal(left.status, 'detached');
    assert.equal(store.get(first.id)!.meta.status, 'running', 'the record still says running, for the next window');
    assert.deepEqual(runsToReattach(store, () => true).followable.filter((f) => f.kind === 'multihost').map((f) => f.meta.run_id), [first.id]);

    const log: string[] = [];
    const asked: number[] = [];
    const resumed = MultiHostRun.resume({
      store, runId: first.id, transportFor, agentSource: AGENT, resolveLocal: (p) => p, logger: testLogger(log),
      confirmQueued: async (n) => (asked.push(n), true),
    });
    const outcome = await resumed.done;
    assert.equal(outcome.status, 'ok', `${log.join('\n')}\n${JSON.stringify(resumed.writer.meta.notes)}`);
    assert.deepEqual(outcome.summary.points.map((p) => p.point).sort(), loaded.points.map((p) => p.id).sort(), 'every point measured');
    for (const p of outcome.summary.points) assert.equal(p.requests.ok, 6, `${p.point} measured once, with all its requests`);
    assert.equal(asked.length, 1, 'asked once before starting the points nobody had started');
    assert.ok(asked[0] >= 1 && asked[0] <= 2, `asked about the unstarted points only (${asked[0]})`);
    const attempts = readdirSync(join(resumed.writer.dir, 'attempts'));
    assert.equal(attempts.length, loaded.points.length, `one attempt per point: the two in flight were followed, not started again (${attempts.join(', ')})`);
    assert.ok(resumed.writer.meta.notes.some((n) => /resumed after a restart: \d of 4 point\(s\) measured, following \S+ on h\d/.test(n)), JSON.stringify(resumed.writer.meta.notes));
    for (const attempt of attempts) {
      const seqs = readEventsSync(join(resumed.writer.dir, 'attempts', attempt)).map((e) => e.seq);
      assert.deepEqual(seqs, seqs.map((_, i) => i), `${attempt}: no event lost or doubled across the restart`);
    }
  });
});
