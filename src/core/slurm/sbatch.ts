/**
 * The batch script Wattbench submits: one task per node through srun; node 0 runs the benchmark
 * (server, load, its own GPUs' power), every other node samples its GPUs until node 0 is done. Every
 * node writes its events to `<run>/node-<id>/events.ndjson` on the shared filesystem.
 */
import type { SlurmTargetSpec } from '../config/model';
import { shq } from '../transport/shell';

export function slurmTime(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  const days = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60].map((v) => String(v).padStart(2, '0')).join(':');
  return days ? `${days}-${hms}` : hms;
}

export function sbatchScript(options: { runId: string; runDir: string; agentPath: string; slurm: SlurmTargetSpec; gpusPerNode?: number }): string {
  const { slurm, runDir } = options;
  const directives = [
    `--job-name=wattbench-${options.runId}`.slice(0, 120),
    `--nodes=${slurm.nodes}`,
    '--ntasks-per-node=1',
    `--output=${runDir}/slurm-%j.out`,
    ...(options.gpusPerNode ? [`--gres=gpu:${options.gpusPerNode}`] : []),
    ...(slurm.partition ? [`--partition=${slurm.partition}`] : []),
    ...(slurm.account ? [`--account=${slurm.account}`] : []),
    ...(slurm.timeLimitS ? [`--time=${slurmTime(slurm.timeLimitS)}`] : []),
    ...slurm.sbatchOptions,
  ];
  for (const d of directives) if (/[\n\r]/.test(d)) throw new Error(`an sbatch option may not contain a line break: ${JSON.stringify(d)}`);
  return [
    '#!/bin/bash',
    ...directives.map((d) => `#SBATCH ${d}`),
    '# Written by Wattbench; kept with the run.',
    'set -u',
    // Each setup line runs on its own, so a trailing backslash, a here-document or a dangling pipe in one
    // line cannot swallow the lines after it (the exports the agent needs); a line that fails ends the job.
    ...slurm.setup.map((line, i) => `eval ${shq(line)} || { echo ${shq(`wattbench: setup line ${i + 1} failed: ${line}`)} >&2; exit 1; }`),
    `export WATTBENCH_RUN=${shq(runDir)}`,
    `export WATTBENCH_AGENT=${shq(options.agentPath)}`,
    // SIGTERM (scancel, time limit) reaches the steps; the agents restore power limits and write `done`.
    // An agent that dies without doing so (killed, out of memory) is cleaned up after on its own node:
    // the login node cannot reach a compute node's GPUs.
    'srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=0 bash -c \'',
    '  dir="$WATTBENCH_RUN/node-$SLURM_NODEID"; mkdir -p "$dir"',
    '  if [ "$SLURM_NODEID" = 0 ]; then',
    '    python3 "$WATTBENCH_AGENT" run --job "$WATTBENCH_RUN/job.json" --run-dir "$dir" & agent=$!',
    '  else',
    '    python3 "$WATTBENCH_AGENT" sample --job "$WATTBENCH_RUN/job.json" --run-dir "$dir" --until-done "$WATTBENCH_RUN/node-0" & agent=$!',
    '  fi',
    '  trap "kill -TERM $agent 2>/dev/null" TERM INT',
    '  wait $agent; code=$?',
    '  while kill -0 $agent 2>/dev/null; do wait $agent; code=$?; done',
    '  python3 "$WATTBENCH_AGENT" stop-server --run-dir "$dir" >> "$dir/cleanup.log" 2>&1',
    '  python3 "$WATTBENCH_AGENT" restore-caps >> "$dir/cleanup.log" 2>&1',
    '  echo "$code" > "$dir/exited"',
    '  exit $code\'',
    '',
  ].join('\n');
}

export type SlurmState = 'PENDING' | 'CONFIGURING' | 'RUNNING' | 'COMPLETING' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMEOUT' | 'NODE_FAIL' | 'OUT_OF_MEMORY' | 'PREEMPTED' | 'BOOT_FAIL' | 'DEADLINE' | string;

export const TERMINAL_STATES = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE']);

export interface SlurmJobInfo {
  state: SlurmState;
  reason?: string;
  exitCode?: string;
  submitTime?: string;
  startTime?: string;
  endTime?: string;
  nodeList?: string;
  numNodes?: number;
}

/** Reads `scontrol show job -o` output (one line of Key=Value pairs). */
export function parseScontrolJob(text: string): SlurmJobInfo | undefined {
  const fields = new Map<string, string>();
  for (const match of text.matchAll(/(\w+)=(\S*)/g)) if (!fields.has(match[1])) fields.set(match[1], match[2]);
  const state = fields.get('JobState');
  if (!state) return undefined;
  const time = (key: string) => {
    const v = fields.get(key);
    return v && v !== 'Unknown' && v !== 'None' ? v : undefined;
  };
  return {
    state,
    reason: fields.get('Reason') && fields.get('Reason') !== 'None' ? fields.get('Reason') : undefined,
    exitCode: fields.get('ExitCode'),
    submitTime: time('SubmitTime'),
    startTime: time('StartTime'),
    endTime: time('EndTime'),
    nodeList: fields.get('NodeList') && fields.get('NodeList') !== '(null)' ? fields.get('NodeList') : undefined,
    numNodes: fields.has('NumNodes') ? Number(fields.get('NumNodes')!.split('-')[0]) : undefined,
  };
}

/**
 * The node names of a Slurm hostlist expression as scontrol prints it: `gpu[01-03,07],login1` →
 * gpu01, gpu02, gpu03, gpu07, login1 (zero padding kept; several bracket groups multiply out).
 */
export function expandHostlist(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if ((c === ',' && depth === 0) || c === undefined) {
      if (i > start) items.push(list.slice(start, i));
      start = i + 1;
    }
  }
  return items.flatMap(expandItem);
}

function expandItem(item: string): string[] {
  const open = item.indexOf('[');
  const close = item.indexOf(']', open);
  if (open < 0 || close < 0) return [item];
  const head = item.slice(0, open);
  const tails = expandItem(item.slice(close + 1));
  const names: string[] = [];
  for (const part of item.slice(open + 1, close).split(',')) {
    const [from, to = from] = part.split('-');
    const a = Number(from);
    const b = Number(to);
    if (!Number.isInteger(a) || !Number.isInteger(b) || b < a) return [item];
    for (let n = a; n <= b; n++) for (const tail of tails) names.push(`${head}${String(n).padStart(from.length, '0')}${tail}`);
  }
  return names;
}

/** Seconds between two scontrol timestamps (local time, ISO-like), or undefined. */
export function secondsBetween(a?: string, b?: string): number | undefined {
  if (!a || !b) return undefined;
  const ms = Date.parse(b) - Date.parse(a);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}
