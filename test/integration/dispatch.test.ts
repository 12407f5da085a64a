/**
 * Runs through real OpenSSH daemons on 127.0.0.2 and 127.0.0.3 (two "GPU hosts" with simulated GPUs),
 * with the real agent, and the faults a user will meet.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { summarize } from '../../src/core/run/summarize';
import { installAgent } from '../../src/core/run/remote';
import { Run } from '../../src/core/run/single';
import { readEventsSync } from '../../src/core/store/store';
import { SshTransport } from '../../src/core/transport/ssh';
import { TransportError } from '../../src/core/transport/types';
import { LocalTransport } from '../../src/core/transport/local';
import { AGENT, simConfig, startRun, waitFor } from './helpers';
import { startSshLab, type SshLab } from './sshd';

let lab: SshLab;
const transports: SshTransport[] = [];
function ssh(alias: string, strict?: 'yes' | 'accept-new'): SshTransport {
  const t = SshTransport.forHost(alias, { configPath: lab.sshConfig, home: lab.home, strictHostKeyChecking: strict });
  transports.push(t);
  return t;
}
const simDir = (alias: string) => join(lab.hosts.get(alias)!.home, 'sim');
/** Each simulated GPU's power limit as the hardware holds it (700 W, the H100's default, unless set). */
function remoteLimits(alias: string): number[] {
  const path = join(simDir(alias), 'limits.json');
  const stored: Record<string, number> = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : {};
  return [0, 1].map((i) => stored[String(i)] ?? 700);
}
/** Energy of the simulated GPUs over [from, to] as the simulation itself accounts it. */
function simTruth(alias: string, from: number, to: number): number[] {
  const out = lab.exec(alias, `python3 ${AGENT} sim-truth --sim-dir ${simDir(alias)} --from ${from} --to ${to}`);
  return (JSON.parse(out) as { gpus: { energy_j: number }[] }).gpus.map((g) => g.energy_j);
}
const agentProcesses = (alias: string, runId: string) => lab.exec(alias, `pgrep -af ${runId} | grep -v pgrep || true`).trim();

describe('runs over real SSH', { concurrency: false }, () => {
  before(async () => {
    lab = await startSshLab([
      { alias: 'gpu-a', address: '127.0.0.2' },
      { alias: 'gpu-b', address: '127.0.0.3' },
      { alias: 'no-python', address: '127.0.0.4', env: { PATH: '/nonexistent' } },
      { alias: 'read-only', address: '127.0.0.5', env: { WATTBENCH_HOME: '/proc/wattbench' } },
    ]);
  });
  after(async () => {
    for (const t of transports) t.close();
    await lab?.stop();
  });

  it('stores a run whose energy equals the simulated ground truth (exact from the counter, within 1% sampled)', async () => {
    const { run } = startRun(ssh('gpu-a'), simConfig());
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok');
    const events = readEventsSync(run.writer.dir);
    const summary = summarize(events);
    assert.equal(summary.points.length, 2);
    assert.equal(summary.simulated, true);
    for (const point of summary.points) {
      assert.equal(point.requests.ok, 6, `${point.point} requests`);
      assert.equal(point.energy.method, 'counter');
      // The counter between two samples must equal the simulation's own account of that time.
      const samples = events.filter((e) => e.type === 'sample' && e.t >= point.window.start && e.t <= point.window.end);
      const first = samples[0] as never as { t: number; gpus: { e_j: number }[] };
      const last = samples.at(-1) as never as { t: number; gpus: { e_j: number }[] };
      const truth = simTruth('gpu-a', first.t, last.t);
      truth.forEach((joules, i) => assert.ok(Math.abs(last.gpus[i].e_j - first.gpus[i].e_j - joules) <= 1e-6 * joules, `GPU ${i}: counter ${last.gpus[i].e_j - first.gpus[i].e_j} vs truth ${joules}`));
      // Without the counter, the trapezoid of the sampled power must come within 1% over the window.
      const sampledOnly = summarize(events.map((e) => (e.type === 'sample' ? { ...e, gpus: e.gpus.map(({ e_j: _, ...g }) => g) } : e)));
      const sampled = sampledOnly.points.find((p) => p.point === point.point)!;
      assert.equal(sampled.energy.method, 'integral');
      const windowTruth = simTruth('gpu-a', point.window.start, point.window.end).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sampled.energy.total_j - windowTruth) <= 0.01 * windowTruth, `sampled ${sampled.energy.total_j} vs truth ${windowTruth}`);
      // Over the whole window the counter is read between samples at the window's two edges, linearly.
      assert.ok(Math.abs(point.energy.total_j - windowTruth) <= 0.01 * windowTruth, `counter-based ${point.energy.total_j} vs truth ${windowTruth}`);
    }
    const stored = JSON.parse(readFileSync(join(run.writer.dir, 'summary.json'), 'utf8'));
    assert.deepEqual(stored.points.map((p: { point: string }) => p.point), summary.points.map((p) => p.point));
    assert.ok(existsSync(join(run.writer.dir, 'server.log')), 'the server log is kept with the run');
    assert.equal(JSON.parse(readFileSync(join(run.writer.dir, 'meta.json'), 'utf8')).status, 'ok');
  });

  it('loses nothing when the connection is cut mid-run, twice', async () => {
    const { run, events } = startRun(ssh('gpu-b'), simConfig({ sweep: '  concurrency: [1, 2]', workload: { max_tokens: 48 } }));
    await waitFor(() => events.some((e) => e.type === 'request'), 60_000, 'a first request');
    lab.cutConnections('gpu-b');
    await waitFor(() => events.filter((e) => e.type === 'request').length >= 5, 60_000, 'more requests after the cut');
    lab.cutConnections('gpu-b');
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok');
    const local = readFileSync(join(run.writer.dir, 'events.ndjson'), 'utf8');
    const remote = lab.exec('gpu-b', `cat ${run.writer.meta.remotes[0].runDir}/events.ndjson`);
    assert.equal(local, remote, 'the stored events are byte for byte the agent\'s');
    const seqs = readEventsSync(run.writer.dir).map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i), 'no gap and no duplicate');
    assert.ok(run.writer.meta.notes.some((n) => /resumed at byte/.test(n)), `a note says the stream resumed: ${run.writer.meta.notes}`);
    assert.deepEqual(outcome.summary.problems, []);
  });

  it('cancel stops the workload and the server, leaves no process, and restores the power limits', async () => {
    const before = remoteLimits('gpu-a');
    assert.deepEqual(before, [700, 700]);
    const { run, events } = startRun(ssh('gpu-a'), simConfig({ sweep: '  power_cap_w: [300W, 250W]', workload: { num_prompts: 40, concurrency: 1 } }));
    await waitFor(() => events.some((e) => e.type === 'cap' && e.action === 'set'), 60_000, 'the cap to be set');
    await waitFor(() => events.some((e) => e.type === 'request'), 60_000, 'load');
    assert.deepEqual(remoteLimits('gpu-a'), [300, 300], 'the cap is in force while the point runs');
    await run.cancel();
    const outcome = await run.done;
    assert.equal(outcome.status, 'cancelled');
    assert.deepEqual(remoteLimits('gpu-a'), before, 'original limits back');
    assert.equal(outcome.summary.caps_restored, true);
    assert.equal(agentProcesses('gpu-a', run.id), '', 'no agent, server or tail left');
    assert.ok(events.some((e) => e.type === 'request'), 'what was measured before cancel is kept');
  });

  it('after the agent is killed with -9, the run ends in error and the limits are restored', async () => {
    const before = remoteLimits('gpu-b');
    assert.deepEqual(before, [700, 700]);
    const { run, events } = startRun(ssh('gpu-b'), simConfig({ sweep: '  power_cap_w: [280W]', workload: { num_prompts: 40, concurrency: 1 } }));
    await waitFor(() => events.some((e) => e.type === 'cap' && e.action === 'set'), 60_000, 'the cap to be set');
    lab.exec('gpu-b', `kill -9 ${run.writer.meta.remotes[0].pid}`);
    const outcome = await run.done;
    assert.equal(outcome.status, 'error');
    assert.match(run.writer.meta.error ?? '', /stopped without finishing/);
    assert.deepEqual(remoteLimits('gpu-b'), before, 'restore-caps put the limits back');
    assert.ok(readEventsSync(run.writer.dir).some((e) => e.type === 'sample'), 'samples measured before the kill are kept');
    assert.match(run.writer.meta.error ?? '', /stopped the server \(process group \d+[^)]*\)/);
    assert.equal(agentProcesses('gpu-b', run.id), '', 'neither the agent nor the server it started is left');
  });

  it('reattaches to a run that went on while nobody watched, and completes it', async () => {
    const first = startRun(ssh('gpu-a'), simConfig());
    await waitFor(() => first.events.some((e) => e.type === 'request'), 60_000, 'a first request');
    // The extension goes away mid-run: stop following without cancelling.
    const handle = first.run.writer.meta.remotes[0];
    const partial = first.events.length;
    first.run.detach();
    assert.equal((await first.run.done).status, 'detached');
    const reattached = await Run.reattach({ store: first.store, runId: first.run.id, transport: ssh('gpu-a'), agentSource: AGENT, reconnectForMs: 30_000 });
    const outcome = await reattached.done;
    assert.equal(outcome.status, 'ok');
    const seqs = readEventsSync(first.run.writer.dir).map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i));
    assert.ok(seqs.length > partial);
    assert.equal(handle.runDir, reattached.writer.meta.remotes[0].runDir);
    assert.equal(outcome.summary.points.every((p) => p.requests.ok === 6), true);
  });

  it('reads a truncated event file again from its start after a reconnect, losing nothing written since', async () => {
    const { run, events } = startRun(ssh('gpu-a'), simConfig({ workload: { num_prompts: 40, concurrency: 1 }, sweep: '  concurrency: [1]' }));
    await waitFor(() => events.some((e) => e.type === 'phase' && e.phase === 'measure'), 60_000, 'measuring');
    const file = `${run.writer.meta.remotes[0].runDir}/events.ndjson`;
    lab.exec('gpu-a', `: > ${file}`);
    await new Promise((r) => setTimeout(r, 1500));
    lab.cutConnections('gpu-a');
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok', `${run.writer.meta.error} ${JSON.stringify(outcome.summary.errors)}`);
    const stored = new Set(readEventsSync(run.writer.dir).map((e) => e.seq));
    const onHost = lab.exec('gpu-a', `cat ${file}`).trim().split('\n').map((l) => JSON.parse(l).seq as number);
    assert.deepEqual(onHost.filter((s) => !stored.has(s)), [], 'every event the host still has reached the workspace');
    assert.equal(stored.size, Math.max(...stored) + 1, 'no seq missing');
    assert.ok(outcome.summary.problems.some((p) => /event file shrank/.test(p)), JSON.stringify(outcome.summary.problems));
  });

  it('reports garbage lines in the stream and keeps every good event', async () => {
    const { run, events } = startRun(ssh('gpu-a'), simConfig());
    await waitFor(() => events.some((e) => e.type === 'phase' && e.phase === 'measure'), 60_000, 'measuring');
    lab.exec('gpu-a', `printf 'garbage \\x01 not json\\n' >> ${run.writer.meta.remotes[0].runDir}/events.ndjson`);
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok');
    assert.ok(outcome.summary.problems.some((p) => /not JSON: "garbage/.test(p)), JSON.stringify(outcome.summary.problems));
    const seqs = readEventsSync(run.writer.dir).map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i));
  });

  it('runs a cached agent only if it is the very archive, owned by the user: an altered one is replaced, a foreign one refused', async () => {
    const t = ssh('gpu-a');
    const first = await installAgent(t, AGENT);
    const digest = createHash('sha256').update(readFileSync(AGENT)).digest('hex');
    const sumOnHost = () => lab.exec('gpu-a', `sha256sum ${first.path} | cut -d' ' -f1`).trim();
    lab.exec('gpu-a', `printf '\\n# tampered\\n' >> ${first.path}`);
    assert.notEqual(sumOnHost(), digest);
    const again = await installAgent(t, AGENT);
    assert.match(again.replaced ?? '', /content does not match/);
    assert.equal(sumOnHost(), digest, 'the altered archive was replaced by ours');
    lab.exec('gpu-a', `chown 65534 ${first.path}`);
    await assert.rejects(installAgent(t, AGENT), /refusing to run the agent cached on gpu-a.*belongs to uid 65534, not to you/);
    lab.exec('gpu-a', `chown 0 ${first.path}`);
    assert.equal((await installAgent(t, AGENT)).replaced, undefined);
  });

  it('a server that never becomes ready fails with its own output and leaves nothing running', async () => {
    const server = '  command: "echo starting the model; sleep 600"\n  base_url: http://127.0.0.1:9/v1\n  ready_timeout: 2s';
    const { run } = startRun(ssh('gpu-b'), simConfig({ server, sweep: '  concurrency: [1]' }));
    const outcome = await run.done;
    assert.equal(outcome.status, 'error');
    const error = outcome.summary.errors.find((e) => /ready/i.test(e.message));
    assert.ok(error, JSON.stringify(outcome.summary.errors));
    const detail = readEventsSync(run.writer.dir).find((e) => e.type === 'error' && e.fatal);
    assert.match(JSON.stringify(detail), /starting the model/);
    assert.equal(lab.exec('gpu-b', `pgrep -f 'slee[p] 600' || true`).trim(), '', 'the server process group is gone');
  });

  it('a host without python3 gets a message that says so', async () => {
    const { run } = startRun(ssh('no-python'), simConfig());
    await assert.rejects(run.done, /python3 was not found on no-python.*Python 3\.8 or newer/);
    assert.equal(run.writer.meta.status, 'error');
  });

  it('a host whose run directory cannot be written gets a message that names it', async () => {
    const { run } = startRun(ssh('read-only'), simConfig());
    await assert.rejects(run.done, /uploading the agent to read-only.*\/proc\/wattbench/);
  });

  it('refuses a changed host key, naming the known_hosts line', async () => {
    const { writeFileSync } = await import('node:fs');
    const host = lab.hosts.get('gpu-a')!;
    const wrong = join(lab.dir, 'known_hosts_wrong');
    writeFileSync(wrong, `[127.0.0.2]:${host.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNpbXVsYXRlZC1hdHRhY2tlci1rZXktMDAwMDAwMDA=\n`);
    const t = SshTransport.forHost('gpu-a', { configPath: lab.sshConfig, home: lab.home });
    (t.settings as { knownHostsFiles: string[] }).knownHostsFiles = [wrong];
    transports.push(t);
    const error = await t.exec('true').then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof TransportError);
    assert.equal(error.kind, 'host-key-changed');
    assert.match(error.message, /host key of gpu-a .* has CHANGED .*known_hosts_wrong:1/);
  });

  it('refuses an unknown host with StrictHostKeyChecking yes, and records it with accept-new', async () => {
    const { writeFileSync } = await import('node:fs');
    const empty = join(lab.dir, 'known_hosts_empty');
    writeFileSync(empty, '');
    const strict = SshTransport.forHost('gpu-b', { configPath: lab.sshConfig, home: lab.home, strictHostKeyChecking: 'yes' });
    (strict.settings as { knownHostsFiles: string[] }).knownHostsFiles = [empty];
    transports.push(strict);
    await assert.rejects(strict.exec('true'), /gpu-b .* is not a known host \(key ssh-ed25519 SHA256:/);
    const lenient = SshTransport.forHost('gpu-b', { configPath: lab.sshConfig, home: lab.home, strictHostKeyChecking: 'accept-new' });
    (lenient.settings as { knownHostsFiles: string[] }).knownHostsFiles = [empty];
    transports.push(lenient);
    assert.equal((await lenient.exec('echo ok')).stdout, 'ok\n');
    assert.match(readFileSync(empty, 'utf8'), /^\[127\.0\.0\.3\]:\d+ ssh-ed25519 /);
  });

  it('reaches a host through ProxyJump, as OpenSSH would', async () => {
    const { appendFileSync, copyFileSync } = await import('node:fs');
    const b = lab.hosts.get('gpu-b')!;
    const config = join(lab.dir, 'ssh_config_jump');
    copyFileSync(lab.sshConfig, config);
    appendFileSync(config, `\nHost behind-a\n  HostName ${b.address}\n  Port ${b.port}\n  User root\n  IdentityFile ${lab.clientKey}\n  UserKnownHostsFile ${lab.knownHosts}\n  StrictHostKeyChecking yes\n  ProxyJump gpu-a\n`);
    const t = SshTransport.forHost('behind-a', { configPath: config, home: lab.home });
    transports.push(t);
    const result = await t.exec('echo "$WATTBENCH_HOME"');
    assert.equal(result.stdout.trim(), b.home, 'the command ran on gpu-b, reached through gpu-a');
  });

  it('never takes a key of a new type for a host it knows, even with accept-new', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const host = lab.hosts.get('gpu-a')!;
    // known_hosts knows gpu-a by an RSA key only; the server offers its ed25519 key.
    const keyDir = mkdtempSync(join(lab.dir, 'rsa-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', join(keyDir, 'k')]);
    const rsa = readFileSync(join(keyDir, 'k.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    const file = join(lab.dir, 'known_hosts_rsa_only');
    writeFileSync(file, `[127.0.0.2]:${host.port} ${rsa}\n`);
    const t = SshTransport.forHost('gpu-a', { configPath: lab.sshConfig, home: lab.home, strictHostKeyChecking: 'accept-new' });
    (t.settings as { knownHostsFiles: string[] }).knownHostsFiles = [file];
    transports.push(t);
    const error = await t.exec('true').then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof TransportError, String(error));
    assert.match(error.message, /offered a ssh-ed25519 host key .*known_hosts_rsa_only:1 knows it by ssh-rsa keys only/);
    assert.equal(readFileSync(file, 'utf8'), `[127.0.0.2]:${host.port} ${rsa}\n`, 'nothing was recorded');
  });

  it('follows every hop of a ProxyJump chain', async () => {
    const { appendFileSync, copyFileSync } = await import('node:fs');
    const b = lab.hosts.get('gpu-b')!;
    const config = join(lab.dir, 'ssh_config_chain');
    copyFileSync(lab.sshConfig, config);
    const target = (name: string, jump: string) =>
      `\nHost ${name}\n  HostName ${b.address}\n  Port ${b.port}\n  User root\n  IdentityFile ${lab.clientKey}\n  UserKnownHostsFile ${lab.knownHosts}\n  StrictHostKeyChecking yes\n  ProxyJump ${jump}\n`;
    appendFileSync(config, target('via-two', 'gpu-a,gpu-b') + target('via-broken', 'gpu-a,root@127.0.0.9:1'));
    const t = SshTransport.forHost('via-two', { configPath: config, home: lab.home });
    transports.push(t);
    assert.equal((await t.exec('echo "$WATTBENCH_HOME"')).stdout.trim(), b.home);
    // The second hop is really used: a chain whose second hop does not exist cannot connect.
    const broken = SshTransport.forHost('via-broken', { configPath: config, home: lab.home });
    transports.push(broken);
    await assert.rejects(broken.exec('true'), /127\.0\.0\.9:1/);
  });

  it('connects through a ProxyCommand, and says what it printed when it fails', async () => {
    const { appendFileSync, copyFileSync, writeFileSync } = await import('node:fs');
    const b = lab.hosts.get('gpu-b')!;
    const relay = join(lab.dir, 'relay.js');
    writeFileSync(relay, "const s = require('net').connect(Number(process.argv[3]), process.argv[2]); process.stdin.pipe(s); s.pipe(process.stdout); s.on('error', (e) => { console.error('relay: ' + e.message); process.exit(1); });\n");
    const config = join(lab.dir, 'ssh_config_proxycommand');
    copyFileSync(lab.sshConfig, config);
    const host = (name: string, command: string) =>
      `\nHost ${name}\n  HostName ${b.address}\n  Port ${b.port}\n  User root\n  IdentityFile ${lab.clientKey}\n  UserKnownHostsFile ${lab.knownHosts}\n  StrictHostKeyChecking yes\n  ProxyCommand ${command}\n`;
    appendFileSync(config, host('via-command', `${process.execPath} ${relay} %h %p`) + host('via-bad-command', `${process.execPath} ${relay} 127.0.0.9 1`));
    const t = SshTransport.forHost('via-command', { configPath: config, home: lab.home });
    transports.push(t);
    assert.equal((await t.exec('echo "$WATTBENCH_HOME"')).stdout.trim(), b.home);
    const bad = SshTransport.forHost('via-bad-command', { configPath: config, home: lab.home });
    transports.push(bad);
    await assert.rejects(bad.exec('true'), /ProxyCommand for via-bad-command .*relay: connect ECONNREFUSED/);
  });

  it('an unreachable host gets a message with the address', async () => {
    const t = SshTransport.forHost('root@127.0.0.9:1', { home: lab.home, configPath: lab.sshConfig });
    transports.push(t);
    await assert.rejects(t.exec('true'), /Cannot reach root@127\.0\.0\.9:1 .*connection refused/);
  });

  it('no config string can run a command on the host', async () => {
    const marker = join(lab.dir, 'pwned');
    const hostile = (n: number) => `x'"; touch ${marker}-${n}; echo '$(touch ${marker}-${n}b)\`touch ${marker}-${n}c\``;
    const dataset = `p'; touch wb-pwned-5; '.jsonl`;
    const text = simConfig({
      name: JSON.stringify(hostile(1)),
      server: `  sim: true\n  served_model: ${JSON.stringify(hostile(2))}\n  env: { EVIL: ${JSON.stringify(hostile(3))} }`,
      sweep: '  concurrency: [1]',
      workload: { dataset, format: 'prompts', num_prompts: 2 },
    });
    const { run } = startRun(ssh('gpu-a'), text, { files: { [dataset]: '{"prompt": "hello there"}\n{"prompt": "and again"}\n' } });
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok', JSON.stringify(outcome.summary.errors));
    // Markers 1–3 would be absolute paths in the lab; 5 is relative, so it would land in a command's
    // working directory: the run directory (inside the lab) or the login's home.
    const pwned = lab.exec('gpu-a', `find ${lab.dir} -maxdepth 1 -name 'pwned*' 2>/dev/null; find ${lab.dir} -name 'wb-pwned-5' 2>/dev/null; find "$HOME" -maxdepth 1 -name 'wb-pwned-5'; true`).trim();
    assert.equal(pwned, '', 'no marker file was created on the host');
  });
});

describe('runs on the local host', () => {
  it('runs the same agent through the local transport', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const home = mkdtempSync(join(tmpdir(), 'wb-local-home-'));
    const { run } = startRun(new LocalTransport({ ...process.env, WATTBENCH_HOME: home }), simConfig({ sweep: '  concurrency: [2]' }), { target: 'local' });
    const outcome = await run.done;
    assert.equal(outcome.status, 'ok');
    assert.equal(outcome.summary.points[0].requests.ok, 6);
    assert.ok(outcome.summary.points[0].energy.total_j > 0);
  });
});
