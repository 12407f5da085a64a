/**
 * 6. Dispatch latency on a loopback SSH host: from Run.start to the first power sample in the
 * extension, against a bare `ssh host true` with the same ssh_config.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { SshTransport } from '../src/core/transport/ssh';
import { simConfig, startRun } from '../test/integration/helpers';
import { startSshLab, type SshLab } from '../test/integration/sshd';
import { median, now, round, spread, type Figure } from './figure';

const HOST = 'bench-gpu';
/** A loopback address of its own, so the tests' daemons on 127.0.0.2–5 never meet this one. */
const ADDRESS = '127.0.0.9';
const WARM_RUNS = 5;
const SSH_TRUE_RUNS = 7;

/** Interval 100 ms and a 1 s idle baseline: a config as users write them, small enough to cancel at once. */
const CONFIG = simConfig({ name: 'bench-dispatch', telemetry: '  source: sim\n  interval: 100ms\n  idle_baseline: 1s' });

interface Dispatch {
  /** Milliseconds from Run.start to each step. */
  installing: number;
  starting: number;
  running: number;
  hello: number;
  firstSample: number;
}

async function dispatchOnce(lab: SshLab): Promise<Dispatch> {
  const marks: Partial<Dispatch> = {};
  let start = 0;
  let sawSample!: () => void;
  const firstSample = new Promise<void>((resolve) => (sawSample = resolve));
  const transport = SshTransport.forHost(HOST, { configPath: lab.sshConfig, home: lab.home });
  start = now();
  const { run, workspace } = startRun(transport, CONFIG, {
    target: HOST,
    listener: {
      onPhase: (phase) => {
        if (phase === 'installing' || phase === 'starting' || phase === 'running') marks[phase] ??= now() - start;
      },
      onEvent: (event) => {
        if (event.type === 'hello') marks.hello ??= now() - start;
        if (event.type === 'sample' && marks.firstSample === undefined) {
          marks.firstSample = now() - start;
          sawSample();
        }
      },
    },
  });
  try {
    await Promise.race([firstSample, run.done.then(() => Promise.reject(new Error('the run ended before its first sample')))]);
    await run.cancel();
    await run.done;
  } finally {
    transport.close();
    rmSync(workspace, { recursive: true, force: true });
  }
  return marks as Dispatch;
}

function sshTrue(lab: SshLab): number {
  const start = now();
  const result = spawnSync('ssh', ['-F', lab.sshConfig, '-o', 'BatchMode=yes', HOST, 'true'], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ssh ${HOST} true failed: ${result.stderr}`);
  return now() - start;
}

export async function dispatch(): Promise<Figure> {
  const lab = await startSshLab([{ alias: HOST, address: ADDRESS }]);
  try {
    const sshMs: number[] = [sshTrue(lab)];
    // The first run installs the agent on the host; later ones find it by hash, as on a host used before.
    const cold = await dispatchOnce(lab);
    const warm: Dispatch[] = [];
    for (let i = 0; i < WARM_RUNS; i++) {
      warm.push(await dispatchOnce(lab));
      sshMs.push(sshTrue(lab));
    }
    while (sshMs.length < SSH_TRUE_RUNS) sshMs.push(sshTrue(lab));
    const step = (k: keyof Dispatch) => round(median(warm.map((d) => d[k])));
    const value = median(warm.map((d) => d.firstSample));
    const baseline = median(sshMs);
    return {
      title: 'Dispatch: Run to first sample, loopback SSH',
      value: round(value),
      unit: 'ms',
      baseline: { value: round(baseline), unit: 'ms', what: '`ssh -F <lab ssh_config> host true` (OpenSSH client, new connection)' },
      ratio: round(value / baseline),
      method:
        `A real OpenSSH sshd on ${ADDRESS} (test/integration/sshd.ts) and the extension's Run.start with a new SshTransport per run (ssh2, the lab's ssh_config), ` +
        'a 2-GPU simulated config (telemetry sim, 100 ms, 1 s idle baseline). Time from Run.start until the listener receives the first `sample` event; the run is then cancelled. ' +
        `Value: median of ${WARM_RUNS} runs with the agent already installed on the host (it is installed by content hash once); ` +
        `the first run, which uploads the agent, is in details. Baseline: median of ${SSH_TRUE_RUNS} \`ssh host true\`, interleaved with the runs.`,
      details: {
        median_ms_from_start: { installing: step('installing'), starting: step('starting'), running: step('running'), hello: step('hello'), first_sample: step('firstSample') },
        first_run_with_agent_upload_ms: round(cold.firstSample),
        first_sample_ms: spread(warm.map((d) => d.firstSample)),
        ssh_true_ms: spread(sshMs),
      },
    };
  } finally {
    await lab.stop();
  }
}
