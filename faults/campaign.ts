/**
 * The fault campaign: the real agent over real loopback sshd (and real Slurm), with faults injected at
 * chosen and random moments. Per fault it counts what a user would care about: events the host wrote
 * that never reached the workspace, events stored twice, whether the power limits are what they were,
 * and processes left on the host.
 *
 *   npx tsx faults/campaign.ts [--short] [--seed S] [--only NAME,...] [--out faults/results.json]
 *
 * `--short` (run by `npm test`) takes fewer trials of the random faults; the full campaign is
 * `npm run faults`. Each trial uses the agent's `sim` GPUs and stand-in server (labelled so in the
 * results): what is real is SSH, the processes, the file systems and Slurm.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/core/config';
import type { AgentEvent } from '../src/core/protocol/events';
import { findAgentSource } from '../src/core/run/agent-path';
import { Run } from '../src/core/run/single';
import { SlurmRun } from '../src/core/run/slurm';
import { readEventsSync, RunStore } from '../src/core/store/store';
import { SshTransport } from '../src/core/transport/ssh';
import type { Transport } from '../src/core/transport/types';
import { simConfig } from '../test/integration/helpers';
import { startSlurm, type SlurmCluster } from '../test/integration/slurm';
import { startSshLab, type HostSpec, type SshLab } from '../test/integration/sshd';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const SHORT = args.includes('--short');
const ONLY = flag('only')?.split(',');
const OUT = flag('out') ?? join(__dirname, SHORT ? 'results-short.json' : 'results.json');
let seed = Number(flag('seed') ?? 20261202);
/** mulberry32: the random moments are reproducible from the seed printed with the results. */
function random(): number {
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const SEED = seed;
const AGENT = findAgentSource();

export interface TrialResult {
  /** Events the host wrote that the workspace does not have. */
  lost: number;
  duplicated: number;
  capsRestored: boolean;
  processesLeft: number;
  /** How the run ended, as the user sees it. */
  outcome: string;
  note?: string;
}

interface FaultSummary {
  fault: string;
  loss_expected?: boolean;
  what: string;
  trials: number;
  events_lost: number;
  events_duplicated: number;
  caps_restored: string;
  processes_left: number;
  outcomes: Record<string, number>;
  /** Where a fault cannot be survived, what the user sees instead. */
  expected?: string;
  notes: string[];
  skipped?: string;
}

interface Lab {
  ssh: SshLab;
  cluster: SlurmCluster;
  /** A small tmpfs that holds gpu-full's WATTBENCH_HOME, when it could be mounted (root). */
  fullDisk?: string;
  dir: string;
  transports: Transport[];
  transport(alias: string): SshTransport;
  simDir(alias: string): string;
  limits(alias: string): number[];
  processes(alias: string, runId: string): number;
}

const CAP_W = 280;
const DEFAULT_W = 700;

/** A short simulated run on 2 GPUs, capped by default so every trial has limits to restore. */
function config(extra: { name?: string; workload?: Record<string, number>; sweep?: string } = {}): string {
  return simConfig({ name: extra.name ?? 'fault', sweep: extra.sweep ?? `  power_cap_w: [${CAP_W}W]`, workload: { num_prompts: 16, concurrency: 2, ...extra.workload } });
}

function start(lab: Lab, alias: string, text = config(), options: { reconnectForMs?: number; workspace?: string } = {}) {
  const workspace = options.workspace ?? mkdtempSync(join(lab.dir, 'ws-'));
  const loaded = loadConfig(text);
  if (!loaded.config) throw new Error(`fault config invalid: ${JSON.stringify(loaded.diagnostics)}`);
  const events: AgentEvent[] = [];
  const run = Run.start({
    store: RunStore.forWorkspace(workspace),
    transport: lab.transport(alias),
    target: alias,
    agentSource: AGENT,
    configText: text,
    config: loaded.config,
    points: loaded.points,
    resolveLocal: (p) => p,
    reconnectForMs: options.reconnectForMs ?? 30_000,
    maxBackoffMs: 500,
    cancelGraceMs: 15_000,
    listener: { onEvent: (e) => events.push(e) },
  });
  return { run, events };
}

async function until<T>(what: string, predicate: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Events on the host against events in the workspace, by seq (of one node, when several stream into a run). */
function compareEvents(lab: Lab, alias: string, runDir: string, localDir: string, node?: string): { lost: number; duplicated: number; hostWrote: number } {
  let hostText = '';
  try {
    hostText = lab.ssh.exec(alias, `cat ${runDir}/events.ndjson 2>/dev/null || true`);
  } catch {
    // the host's file may be gone (a fault that deletes it): only the workspace's copy counts then
  }
  const hostSeqs = new Set<number>();
  for (const line of hostText.split('\n')) {
    try {
      const seq = (JSON.parse(line) as { seq?: unknown }).seq;
      if (typeof seq === 'number') hostSeqs.add(seq);
    } catch {
      // a partial last line on the host is not an event yet
    }
  }
  const local = readEventsSync(localDir).filter((e) => e.node === node).map((e) => e.seq);
  const localSet = new Set(local);
  // An event is known to exist if the host still has it or a later seq was seen: seq has no gaps.
  const last = Math.max(-1, ...hostSeqs, ...localSet);
  let lost = 0;
  for (let s = 0; s <= last; s++) if (!localSet.has(s)) lost++;
  return { lost, duplicated: local.length - localSet.size, hostWrote: hostSeqs.size };
}

async function finishTrial(lab: Lab, alias: string, run: Run, settle = 0): Promise<TrialResult> {
  let outcome: string;
  try {
    outcome = (await run.done).status;
  } catch (error) {
    outcome = `failed: ${(error as Error).message.slice(0, 120)}`;
  }
  if (settle) await sleep(settle);
  const handle = run.writer.meta.remotes[0];
  const { lost, duplicated } = handle ? compareEvents(lab, alias, handle.runDir, run.writer.dir) : { lost: 0, duplicated: 0 };
  const limits = lab.limits(alias);
  return {
    lost,
    duplicated,
    capsRestored: limits.every((w) => w === DEFAULT_W),
    processesLeft: lab.processes(alias, run.id),
    outcome: outcome.startsWith('failed') ? 'failed' : outcome,
    note: outcome.startsWith('failed') ? outcome : run.writer.meta.error?.slice(0, 160),
  };
}

/** Puts a host back as a fresh one for the next trial, whatever the last one left. */
function resetHost(lab: Lab, alias: string): void {
  try {
    // Only this host's agents (their archive lives under its home): never another campaign's or a test's.
    lab.ssh.exec(alias, `pkill -KILL -f "$WATTBENCH_HOME/agent/" || true; rm -rf "$WATTBENCH_HOME"/caps*.json "$WATTBENCH_HOME"/caps-saved "$WATTBENCH_HOME"/fill; true`);
  } catch {
    // best effort
  }
  rmSync(join(lab.simDir(alias), 'limits.json'), { force: true });
}

/** Two runs of one trial as one result; `capsRestored` is the host's state after both. */
function both(ra: TrialResult, rb: TrialResult, capsRestored: boolean): TrialResult {
  return {
    lost: ra.lost + rb.lost,
    duplicated: ra.duplicated + rb.duplicated,
    capsRestored,
    processesLeft: ra.processesLeft + rb.processesLeft,
    outcome: `${ra.outcome}+${rb.outcome}`,
    note: [ra.note, rb.note].filter(Boolean).join(' | ') || undefined,
  };
}

interface Fault {
  name: string;
  what: string;
  trials: number;
  expected?: string;
  /** Events the agent could not write cannot reach anyone: counted and reported, not a failure. */
  lossExpected?: boolean;
  needs?: () => string | undefined;
  trial(lab: Lab, index: number): Promise<TrialResult>;
}

const PHASES = ['baseline', 'server_start', 'warmup', 'measure', 'restore'] as const;
let fullDiskProblem: string | undefined;

function stateStatus(lab: Lab, alias: string, runDir: string): string {
  try {
    return (JSON.parse(lab.ssh.exec(alias, `cat ${runDir}/state.json`)) as { status?: string }).status ?? '?';
  } catch {
    return 'unreadable';
  }
}

const phaseSeen = (events: AgentEvent[], phase: string) => events.some((e) => e.type === 'phase' && e.phase === phase);

function slurmStart(lab: Lab, text: string) {
  const loaded = loadConfig(text);
  if (!loaded.config || loaded.config.target.kind !== 'slurm') throw new Error(`fault config invalid: ${JSON.stringify(loaded.diagnostics)}`);
  const events: AgentEvent[] = [];
  const run = new SlurmRun({
    store: RunStore.forWorkspace(mkdtempSync(join(lab.dir, 'ws-'))),
    transport: lab.transport('login'),
    slurm: loaded.config.target.slurm,
    agentSource: AGENT,
    configText: text,
    config: loaded.config,
    points: loaded.points,
    resolveLocal: (p) => p,
    pollMs: 500,
    reconnectForMs: 30_000,
    maxBackoffMs: 500,
    listener: { onEvent: (e) => events.push(e) },
  });
  return { run, events };
}

async function finishSlurmTrial(lab: Lab, run: SlurmRun): Promise<TrialResult> {
  let outcome: string;
  try {
    outcome = (await run.done).status;
  } catch (error) {
    outcome = `failed: ${(error as Error).message.slice(0, 120)}`;
  }
  let lost = 0;
  let duplicated = 0;
  for (const handle of run.writer.meta.remotes) {
    const c = compareEvents(lab, 'login', handle.runDir, run.writer.dir, handle.node);
    lost += c.lost;
    duplicated += c.duplicated;
  }
  return {
    lost,
    duplicated,
    capsRestored: lab.limits('login').every((w) => w === DEFAULT_W),
    processesLeft: lab.processes('login', run.id),
    outcome: outcome.startsWith('failed') ? 'failed' : outcome,
    note: outcome.startsWith('failed') ? outcome : run.writer.meta.error?.slice(0, 160),
  };
}

const slurmConfig = (prompts: number) => config({ name: 'fault-slurm', workload: { num_prompts: prompts } }).replace('target: local', 'target:\n  slurm:\n    login: login\n    nodes: 2\n    gpus_per_node: 1');

/** Runs `command(runDir)` on gpu-a once a point measures, and follows the run to its end. */
async function whileMeasuring(lab: Lab, command: (runDir: string) => string): Promise<TrialResult> {
  resetHost(lab, 'gpu-a');
  const { run, events } = start(lab, 'gpu-a', config({ workload: { num_prompts: 40 } }));
  await until('measure', () => phaseSeen(events, 'measure'), 90_000);
  lab.ssh.exec('gpu-a', command(run.writer.meta.remotes[0].runDir));
  return finishTrial(lab, 'gpu-a', run);
}

const faults: Fault[] = [
  {
    name: 'ssh-cut',
    what: 'the SSH connection cut (every session of the host killed) at a random moment of the run',
    trials: SHORT ? 5 : 24,
    async trial(lab) {
      resetHost(lab, 'gpu-a');
      const { run, events } = start(lab, 'gpu-a');
      await until('the agent to start', () => events.length > 0);
      await sleep(200 + random() * 4000);
      lab.ssh.cutConnections('gpu-a');
      return finishTrial(lab, 'gpu-a', run);
    },
  },
  ...PHASES.map(
    (phase): Fault => ({
      name: `agent-kill-9-${phase}`,
      what: `the agent killed with -9 as soon as it reports phase "${phase}"`,
      trials: 1,
      expected: 'the run ends "error" saying the agent stopped without finishing; what it measured before is kept',
      async trial(lab) {
        resetHost(lab, 'gpu-b');
        const { run, events } = start(lab, 'gpu-b');
        await until(`phase ${phase}`, () => phaseSeen(events, phase), 90_000);
        lab.ssh.exec('gpu-b', `kill -9 ${run.writer.meta.remotes[0].pid}`);
        return finishTrial(lab, 'gpu-b', run);
      },
    }),
  ),
  {
    name: 'server-crash',
    what: 'the inference server (stand-in) killed with -9 in the middle of a measured point',
    trials: 1,
    expected: 'the point ends "error" with the server\'s exit named; the run goes on or ends, caps restored',
    async trial(lab) {
      resetHost(lab, 'gpu-a');
      const { run, events } = start(lab, 'gpu-a', config({ workload: { num_prompts: 60 } }));
      await until('measure', () => phaseSeen(events, 'measure'), 90_000);
      await sleep(500);
      lab.ssh.exec('gpu-a', `pkill -KILL -f '[w]attbench_agent.pyz sim-server' || true`);
      return finishTrial(lab, 'gpu-a', run);
    },
  },
  {
    name: 'run-dir-deleted',
    what: "the run's directory on the host deleted (rm -rf) while it measures",
    trials: 1,
    trial: (lab) => whileMeasuring(lab, (runDir) => `rm -rf ${runDir}`),
  },
  {
    name: 'event-file-truncated',
    what: 'the event file on the host truncated to 0 bytes while it measures',
    trials: 1,
    trial: (lab) => whileMeasuring(lab, (runDir) => `: > ${runDir}/events.ndjson`),
  },
  {
    name: 'slurm-ssh-cut',
    what: 'the SSH connection to the Slurm login node cut at a random moment of a two-node job',
    trials: SHORT ? 1 : 4,
    async trial(lab) {
      resetHost(lab, 'login');
      const { run, events } = slurmStart(lab, slurmConfig(16));
      await until('the job to send events', () => events.length > 0, 90_000);
      await sleep(random() * 3000);
      lab.ssh.cutConnections('login');
      return finishSlurmTrial(lab, run);
    },
  },
  {
    name: 'slurm-agent-kill-9',
    what: "node 0's agent killed with -9 while it measures a capped point of a two-node Slurm job",
    trials: 1,
    expected: 'the job ends and the run says node 0 did not finish; the node itself restores its limits (restore-caps after the agent)',
    async trial(lab) {
      resetHost(lab, 'login');
      const { run, events } = slurmStart(lab, slurmConfig(60));
      await until('measure', () => phaseSeen(events, 'measure'), 90_000);
      lab.ssh.exec('login', `pkill -9 -f '[w]attbench_agent.pyz run --job .*${run.id}'`);
      return finishSlurmTrial(lab, run);
    },
  },
  ...(['baseline', 'server_start', 'warmup', 'measure'] as const).map(
    (phase): Fault => ({
      name: `disk-full-${phase}`,
      what: `the host's file system (a ${'3 MiB'} tmpfs holding WATTBENCH_HOME) filled up as the agent reports phase "${phase}"`,
      trials: 1,
      lossExpected: true,
      expected: 'events the agent could not write are lost and counted; the run ends "error" naming the full disk; limits restored, server stopped, state.json not "running"',
      needs: () => fullDiskProblem,
      async trial(lab) {
        resetHost(lab, 'gpu-full');
        const { run, events } = start(lab, 'gpu-full');
        await until(`phase ${phase}`, () => phaseSeen(events, phase), 90_000);
        lab.ssh.exec('gpu-full', 'dd if=/dev/zero of="$WATTBENCH_HOME/fill" bs=64k 2>/dev/null; true');
        const result = await finishTrial(lab, 'gpu-full', run, 500);
        const handle = run.writer.meta.remotes[0];
        const state = handle ? stateStatus(lab, 'gpu-full', handle.runDir) : 'no run dir';
        lab.ssh.exec('gpu-full', 'rm -f "$WATTBENCH_HOME/fill"');
        return { ...result, note: `state.json ${state}; ${result.note ?? ''}`.trim(), capsRestored: result.capsRestored && state !== 'running' };
      },
    }),
  ),
  {
    name: 'clock-step',
    what: "the wall clock stepped an hour back and forward mid-run (the agent in-process with time.time stepped: test/agent/test_wall_clock.py)",
    trials: 1,
    // A process's wall clock cannot be stepped here: no CAP_SYS_TIME, and libfaketime breaks Python's timed waits (EINVAL).
    expected: 'baseline, time limits, ready timeout, stop grace and every event time keep their lengths',
    async trial() {
      const result = spawnSync('python3', ['-m', 'unittest', 'test.agent.test_wall_clock'], { cwd: join(__dirname, '..'), encoding: 'utf8' });
      const ran = /Ran (\d+) test/.exec(result.stderr)?.[1] ?? '0';
      return { lost: 0, duplicated: 0, capsRestored: true, processesLeft: 0, outcome: result.status === 0 ? 'ok' : 'figures wrong', note: `${ran} in-process runs with the clock stepped ±1 h${result.status === 0 ? '' : `: ${result.stderr.slice(-300)}`}` };
    },
  },
  {
    name: 'shared-home',
    what: 'two hosts sharing one WATTBENCH_HOME (an NFS home), each capping its own GPUs at the same time',
    trials: 1,
    async trial(lab) {
      resetHost(lab, 'share-1');
      resetHost(lab, 'share-2');
      const a = start(lab, 'share-1', config({ name: 'node-a', sweep: '  power_cap_w: [280W]' }));
      const b = start(lab, 'share-2', config({ name: 'node-b', sweep: '  power_cap_w: [320W]' }));
      const [ra, rb] = await Promise.all([finishTrial(lab, 'share-1', a.run), finishTrial(lab, 'share-2', b.run)]);
      return both(ra, rb, ra.capsRestored && rb.capsRestored);
    },
  },
  {
    name: 'two-runs-one-host',
    what: 'two runs started at the same moment on one host, both capping its GPUs',
    trials: 1,
    async trial(lab) {
      resetHost(lab, 'gpu-b');
      const a = start(lab, 'gpu-b', config({ name: 'first', sweep: '  power_cap_w: [280W, 300W]' }));
      const b = start(lab, 'gpu-b', config({ name: 'second', sweep: '  power_cap_w: [320W]' }));
      const [ra, rb] = await Promise.all([finishTrial(lab, 'gpu-b', a.run), finishTrial(lab, 'gpu-b', b.run)]);
      return both(ra, rb, lab.limits('gpu-b').every((w) => w === DEFAULT_W));
    },
  },
];

async function startLab(): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'wb-faults-'));
  const cluster = await startSlurm(2);
  const fullDisk = join(dir, 'full-disk');
  mkdirSync(fullDisk);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', fullDisk], { encoding: 'utf8' });
  if (mounted.status !== 0) fullDiskProblem = `could not mount a small tmpfs (needs root): ${(mounted.stderr || '').trim()}`;
  const shared = join(dir, 'shared-home');
  mkdirSync(shared);
  const own = (alias: string) => join(dir, `${alias}-sim`);
  const specs: HostSpec[] = [
    { alias: 'gpu-a', address: '127.0.0.2' },
    { alias: 'gpu-b', address: '127.0.0.3' },
    { alias: 'login', address: '127.0.0.6', env: { SLURM_CONF: cluster.conf } },
    { alias: 'gpu-full', address: '127.0.0.7', env: { WATTBENCH_HOME: fullDisk, WATTBENCH_SIM_DIR: own('gpu-full') } },
    { alias: 'share-1', address: '127.0.0.8', env: { WATTBENCH_HOME: shared, WATTBENCH_SIM_DIR: own('share-1'), WATTBENCH_TEST_HOSTNAME: 'share-1' } },
    { alias: 'share-2', address: '127.0.0.9', env: { WATTBENCH_HOME: shared, WATTBENCH_SIM_DIR: own('share-2'), WATTBENCH_TEST_HOSTNAME: 'share-2' } },
  ];
  const ssh = await startSshLab(specs);
  const transports: Transport[] = [];
  const lab: Lab = {
    ssh,
    cluster,
    fullDisk: fullDiskProblem ? undefined : fullDisk,
    dir,
    transports,
    transport(alias) {
      const t = SshTransport.forHost(alias, { configPath: ssh.sshConfig, home: ssh.home, readyTimeoutMs: 5000 });
      transports.push(t);
      return t;
    },
    simDir: (alias) => (['gpu-full', 'share-1', 'share-2'].includes(alias) ? own(alias) : join(ssh.hosts.get(alias)!.home, 'sim')),
    limits(alias) {
      const path = join(lab.simDir(alias), 'limits.json');
      const stored: Record<string, number> = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : {};
      return [0, 1].map((i) => stored[String(i)] ?? DEFAULT_W);
    },
    processes(alias, runId) {
      const out = ssh.exec(alias, `pgrep -af '${runId}' | grep -v pgrep || true`).trim();
      return out ? out.split('\n').length : 0;
    },
  };
  return lab;
}

export async function campaign(extra: Fault[] = []): Promise<FaultSummary[]> {
  const lab = await startLab();
  const results: FaultSummary[] = [];
  try {
    for (const fault of [...faults, ...extra]) {
      if (ONLY && !ONLY.some((o) => fault.name.startsWith(o))) continue;
      const summary: FaultSummary = { loss_expected: fault.lossExpected, fault: fault.name, what: fault.what, trials: 0, events_lost: 0, events_duplicated: 0, caps_restored: '', processes_left: 0, outcomes: {}, expected: fault.expected, notes: [] };
      const missing = fault.needs?.();
      if (missing) {
        summary.skipped = missing;
        summary.caps_restored = '–';
        results.push(summary);
        process.stderr.write(`${fault.name}: skipped (${missing})\n`);
        continue;
      }
      let restored = 0;
      for (let i = 0; i < fault.trials; i++) {
        let r: TrialResult;
        try {
          r = await fault.trial(lab, i);
        } catch (error) {
          r = { lost: 0, duplicated: 0, capsRestored: false, processesLeft: 0, outcome: 'campaign error', note: (error as Error).message };
        }
        summary.trials++;
        summary.events_lost += r.lost;
        summary.events_duplicated += r.duplicated;
        summary.processes_left += r.processesLeft;
        if (r.capsRestored) restored++;
        summary.outcomes[r.outcome] = (summary.outcomes[r.outcome] ?? 0) + 1;
        if (r.note && !summary.notes.includes(r.note) && summary.notes.length < 5) summary.notes.push(r.note);
        process.stderr.write(`${fault.name} #${i + 1}: ${r.outcome}, lost ${r.lost}, duplicated ${r.duplicated}, caps ${r.capsRestored ? 'restored' : 'NOT restored'}, processes left ${r.processesLeft}${r.note ? ` (${r.note})` : ''}\n`);
      }
      summary.caps_restored = `${restored}/${summary.trials}`;
      results.push(summary);
    }
  } finally {
    for (const t of lab.transports) t.close();
    await lab.ssh.stop();
    await lab.cluster.stop();
    if (lab.fullDisk) spawnSync('umount', [lab.fullDisk]);
    rmSync(lab.dir, { recursive: true, force: true });
  }
  return results;
}

/** The README's table, written beside the JSON. */
export function markdownTable(results: FaultSummary[]): string {
  const rows = results.map((r) =>
    r.skipped
      ? `| ${r.fault} | – | – | – | – | – | skipped: ${r.skipped} |`
      : `| ${r.fault} | ${r.trials} | ${r.events_lost}${r.loss_expected && r.events_lost ? ' (never written: disk full)' : ''} | ${r.events_duplicated} | ${r.caps_restored} | ${r.processes_left} | ${Object.entries(r.outcomes).map(([k, v]) => `${k} ×${v}`).join(', ')} |`,
  );
  return ['| fault | trials | events lost | duplicated | caps restored | processes left | how runs ended |', '| --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

if (require.main === module) {
  const started = Date.now();
  void campaign().then(
    (results) => {
      const doc = { seed: SEED, short: SHORT, simulated: 'GPUs and inference server are the agent\'s sim stand-ins; SSH, processes, file systems and Slurm are real', when: new Date().toISOString(), duration_s: Math.round((Date.now() - started) / 1000), results };
      mkdirSync(join(OUT, '..'), { recursive: true });
      writeFileSync(OUT, `${JSON.stringify(doc, null, 2)}\n`);
      writeFileSync(OUT.replace(/\.json$/, '.md'), `${markdownTable(results)}\n`);
      process.stdout.write(`${markdownTable(results)}\n\nseed ${SEED}, ${doc.duration_s} s; written to ${OUT}\n`);
      const bad = results.filter((r) => !r.skipped && ((r.events_lost && !r.loss_expected) || r.events_duplicated || r.processes_left || !r.caps_restored.startsWith(`${r.trials}/`) || r.outcomes['campaign error']));
      const total = results.filter((r) => !r.skipped).length;
      process.stdout.write(`faults: ${total - bad.length} passed, ${bad.length} failed\n`);
      process.exit(bad.length ? 1 : 0);
    },
    (error) => {
      process.stderr.write(`${(error as Error).stack}\n`);
      process.exit(2);
    },
  );
}
