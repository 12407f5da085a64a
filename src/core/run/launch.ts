/**
 * Putting a run on a host, the one way every kind of run does it: install the agent by content hash,
 * upload the job and the dataset files it names into a private run directory, start the agent detached.
 * Slurm stops before the start: sbatch starts the agent on the nodes.
 */
import { readFileSync } from 'node:fs';
import type { ResolvedConfig, ResolvedPoint } from '../config/model';
import type { RunMeta, RunStore } from '../store/store';
import type { Transport } from '../transport/types';
import type { FollowOptions, RunListener } from './follower';
import { buildJob } from './job';
import { installAgent, remoteRunDir, startAgent, uploadRunFiles, type InstalledAgent } from './remote';

/** What every kind of run (one host, several, Slurm) is started from. */
export interface RunSpec extends FollowOptions {
  store: RunStore;
  agentSource: string;
  configText: string;
  config: ResolvedConfig;
  points: ResolvedPoint[];
  configFile?: string;
  /** Resolves dataset paths written relative to the config. */
  resolveLocal: (relative: string) => string;
  listener?: RunListener;
  predictions?: RunMeta['predictions'];
}

export interface PreparedJob {
  /** job.json as uploaded, to keep with the run. */
  jobText: string;
}

/** Uploads the job for `points` (and `extra` files, e.g. a batch script) into `runDir` on the agent's host. */
export async function prepareRunDir(
  agent: InstalledAgent,
  runDir: string,
  runId: string,
  spec: Pick<RunSpec, 'config' | 'resolveLocal'>,
  points: ResolvedPoint[],
  extra: [string, string][] = [],
): Promise<PreparedJob> {
  const { job, files } = buildJob(runId, spec.config, points, spec.resolveLocal);
  const jobText = JSON.stringify(job, null, 2);
  const uploads = new Map<string, Buffer | string>([['job.json', jobText], ...extra]);
  for (const [name, local] of files) uploads.set(name, readFileSync(local));
  await uploadRunFiles(agent, runDir, uploads);
  return { jobText };
}

export interface Launched extends PreparedJob {
  agent: InstalledAgent;
  runDir: string;
  pid: number;
}

export interface LaunchOptions {
  /** An agent this host already has installed (several points on one host install once). */
  agent?: InstalledAgent;
  listener?: RunListener;
  /** Called after the upload, before the agent starts: throws to stop a start that was cancelled meanwhile. */
  beforeStart?: () => void;
}

/** Installs the agent, uploads the job and starts it detached on `transport`'s host. */
export async function launchAgent(
  transport: Transport,
  runId: string,
  spec: Pick<RunSpec, 'agentSource' | 'config' | 'resolveLocal'>,
  points: ResolvedPoint[],
  options: LaunchOptions = {},
): Promise<Launched> {
  options.listener?.onPhase?.('installing', transport.label);
  const agent = options.agent ?? (await installAgent(transport, spec.agentSource));
  const runDir = remoteRunDir(agent, runId);
  options.listener?.onPhase?.('starting', transport.label);
  const prepared = await prepareRunDir(agent, runDir, runId, spec, points);
  options.beforeStart?.();
  const pid = await startAgent(agent, runDir);
  return { ...prepared, agent, runDir, pid };
}
