/**
 * 5. Agent overhead: CPU the agent itself burns per wall-clock second while it samples 8 simulated
 * GPUs and nothing else runs (the idle baseline of a run), at 10 Hz and at 100 Hz.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/core/config';
import { findAgentSource } from '../src/core/run/agent-path';
import { buildJob } from '../src/core/run/job';
import { now, round, sleep, type Figure } from './figure';

/** The agent as it ships: dist/wattbench_agent.pyz, built from agent/wattbench_agent/ when missing or older. */
const AGENT = findAgentSource();
const GPUS = 8;
const WINDOW_S = 15;
/** Let the agent finish starting (imports, hello, first samples) before the window opens. */
const SETTLE_S = 2;

function config(intervalMs: number): string {
  return `name: bench-agent-overhead
target: local
server:
  sim: true
model:
  id: meta-llama/Llama-3.1-8B-Instruct
gpus:
  type: H100-SXM-80GB
  count: ${GPUS}
workload:
  num_prompts: 1
telemetry:
  source: sim
  interval: ${intervalMs}ms
  idle_baseline: 1h
`;
}

const clockTicksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of the whole process (every thread, live or ended), in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which sits in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

function samplesBetween(eventsFile: string, from: number, to: number): number {
  let count = 0;
  for (const line of readFileSync(eventsFile, 'utf8').split('\n')) {
    if (!line.includes('"type":"sample"')) continue;
    const t = (JSON.parse(line) as { t: number }).t;
    if (t >= from && t < to) count++;
  }
  return count;
}

interface Overhead {
  hz: number;
  cpuS: number;
  wallS: number;
  /** Share of one core. */
  share: number;
  achievedHz: number;
}

async function measureAt(hz: number, dir: string): Promise<Overhead> {
  const intervalMs = 1000 / hz;
  const loaded = loadConfig(config(intervalMs));
  if (!loaded.config) throw new Error(`the bench's agent config is invalid: ${loaded.diagnostics.map((d) => d.message).join('; ')}`);
  const home = join(dir, `home-${hz}`);
  const runDir = join(dir, `run-${hz}`);
  mkdirSync(home, { recursive: true });
  const { job } = buildJob(`bench-agent-${hz}hz`, loaded.config, loaded.points, (p) => p);
  const jobFile = join(dir, `job-${hz}.json`);
  writeFileSync(jobFile, JSON.stringify(job));
  // Detached, as the extension starts it on a host: its own session, stdout not mirrored anywhere.
  const started = spawnSync('python3', [AGENT, 'run', '--job', jobFile, '--run-dir', runDir, '--sim-dir', join(dir, `sim-${hz}`), '--detach'], {
    env: { ...process.env, WATTBENCH_HOME: home },
    encoding: 'utf8',
  });
  const pid = (JSON.parse(started.stdout.trim().split('\n').pop() ?? '{}') as { pid?: number }).pid;
  if (!pid) throw new Error(`the agent did not start: ${started.stdout}${started.stderr}`);
  try {
    const eventsFile = join(runDir, 'events.ndjson');
    const deadline = now() + 15_000;
    while (!(existsSync(eventsFile) && readFileSync(eventsFile, 'utf8').includes('"phase":"baseline"'))) {
      if (now() > deadline) throw new Error(`the agent (pid ${pid}) did not reach its idle baseline: ${existsSync(eventsFile) ? readFileSync(eventsFile, 'utf8').slice(-500) : 'no events'}`);
      await sleep(50);
    }
    await sleep(SETTLE_S * 1000);
    const cpu0 = cpuSeconds(pid);
    const wall0 = now();
    const epoch0 = Date.now() / 1000;
    await sleep(WINDOW_S * 1000);
    const cpu1 = cpuSeconds(pid);
    const wallS = (now() - wall0) / 1000;
    const epoch1 = Date.now() / 1000;
    const cpuS = cpu1 - cpu0;
    return { hz, cpuS, wallS, share: cpuS / wallS, achievedHz: samplesBetween(eventsFile, epoch0, epoch1) / (epoch1 - epoch0) };
  } finally {
    process.kill(pid, 'SIGTERM');
    const deadline = now() + 15_000;
    while (existsSync(`/proc/${pid}`) && now() < deadline) await sleep(100);
    if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
  }
}

export async function agentOverhead(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'wb-bench-agent-'));
  try {
    // One after the other: two agents at once would share the cores they are measured on.
    const slow = await measureAt(10, dir);
    const fast = await measureAt(100, dir);
    const method = (o: Overhead) =>
      `python3 dist/wattbench_agent.pyz run --detach on a job of ${GPUS} simulated H100s (telemetry sim, interval ${1000 / o.hz} ms) with a 1 h idle baseline, so only the sampler runs; ` +
      `after it reaches the baseline and ${SETTLE_S} s more, utime+stime from /proc/<pid>/stat (all threads, ${clockTicksPerSecond} ticks/s) over a ${WINDOW_S} s window, divided by the window's wall time. ` +
      `${(o.cpuS * 1000).toFixed(0)} ms of CPU in ${o.wallS.toFixed(1)} s; the agent wrote ${o.achievedHz.toFixed(1)} samples/s in the window.`;
    return [
      {
        title: 'Agent CPU at 10 Hz (8 sim GPUs)',
        value: round(slow.share * 100),
        unit: '% of a core',
        target: { on: 'value', op: '<', limit: 1 },
        method: method(slow),
        details: { cpu_ms: round(slow.cpuS * 1000), wall_s: round(slow.wallS), samples_per_s: round(slow.achievedHz), cpu_ms_per_sample: round((slow.cpuS * 1000) / (slow.achievedHz * slow.wallS)) },
      },
      {
        title: 'Agent CPU at 100 Hz (8 sim GPUs)',
        value: round(fast.share * 100),
        unit: '% of a core',
        method: method(fast),
        details: { cpu_ms: round(fast.cpuS * 1000), wall_s: round(fast.wallS), samples_per_s: round(fast.achievedHz), cpu_ms_per_sample: round((fast.cpuS * 1000) / (fast.achievedHz * fast.wallS)) },
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
