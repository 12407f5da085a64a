/**
 * Where every run begins and begins again: a new run goes to whatever the config targets (one host,
 * several hosts, a Slurm cluster); a stored run still marked running is followed again by its kind.
 */
import type { ResolvedConfig } from '../config/model';
import type { RunMeta, RunStore, RunWriter } from '../store/store';
import type { Transport } from '../transport/types';
import type { FollowOptions, RunListener, RunOutcome } from './follower';
import type { RunSpec } from './launch';
import { MultiHostRun } from './multihost';
import { Run } from './single';
import { SlurmRun } from './slurm';
import type { FollowKind } from './stored';
import type { Summarizer } from './summarize';

/** What every kind of run offers its caller. */
export interface RunHandle {
  readonly id: string;
  readonly writer: RunWriter;
  readonly summarizer: Summarizer;
  readonly done: Promise<RunOutcome>;
  cancel(): Promise<void>;
  /** Stop following; the run goes on where it runs. */
  detach(): void;
}

export interface StartRunOptions extends RunSpec {
  /** Overrides the config's target with one host. */
  host?: string;
  transportFor: (host: string) => Transport;
}

/** A short description of where a run goes, for titles and messages. */
export function describeTarget(config: ResolvedConfig, host?: string): string {
  if (host) return host;
  const t = config.target;
  return t.kind === 'local' ? 'local' : t.kind === 'ssh' ? t.host : t.kind === 'hosts' ? t.hosts.join(', ') : `Slurm via ${t.slurm.login}`;
}

/** Closes a run's own transport when the run ends, however it ends. */
function closing<T extends RunHandle>(run: T, transport: Transport): T {
  run.done.finally(() => transport.close()).catch(() => undefined);
  return run;
}

export function startRun(options: StartRunOptions): RunHandle {
  const { config, host } = options;
  const target = config.target;
  if (!host && target.kind === 'hosts') return new MultiHostRun({ ...options, hosts: target.hosts });
  if (!host && target.kind === 'slurm') {
    const login = options.transportFor(target.slurm.login);
    return closing(new SlurmRun({ ...options, transport: login, slurm: target.slurm }), login);
  }
  const single = host ?? (target.kind === 'ssh' ? target.host : 'local');
  const transport = options.transportFor(single);
  return closing(Run.start({ ...options, transport, target: single }), transport);
}

export interface FollowAgainOptions extends FollowOptions {
  store: RunStore;
  agentSource: string;
  transportFor: (host: string) => Transport;
  /** Resolves dataset paths of points still to start (a sweep over several hosts goes on with them). */
  resolveLocal: (relative: string) => string;
  listener?: RunListener;
  /** Asked before a resumed sweep over several hosts starts points that nobody started yet. */
  confirmQueued?: (meta: RunMeta, points: number) => Promise<boolean>;
}

/** A stored run followed again, with what a caller can tell its user about it. */
export interface FollowedAgain {
  run: RunHandle;
  kind: FollowKind;
  /** Where it runs: the host, the hosts, or the Slurm job. */
  where: string;
}

/**
 * Follows again a run that was still going when Wattbench stopped: one host from its stored offset,
 * several hosts from their attempt folders, a Slurm job by asking Slurm. Rejects, leaving the record
 * as it was, when the run cannot be picked up now (its host unreachable, its config no longer valid).
 */
export async function followAgain(meta: RunMeta, kind: FollowKind, options: FollowAgainOptions): Promise<FollowedAgain> {
  const runId = meta.run_id;
  if (kind === 'multihost') {
    const { confirmQueued } = options;
    return { run: MultiHostRun.resume({ ...options, runId, confirmQueued: confirmQueued && ((n) => confirmQueued(meta, n)) }), kind, where: meta.target };
  }
  // One host to talk to: the login node or the run's host. Its transport lives as long as the run, or closes at once if the run cannot be picked up.
  const host = kind === 'slurm' ? meta.target.replace(/^slurm:/, '') : meta.remotes[0].host;
  const transport = options.transportFor(host);
  try {
    const run = kind === 'slurm' ? SlurmRun.reattach({ ...options, runId, transport }) : await Run.reattach({ ...options, runId, transport });
    return { run: closing(run, transport), kind, where: kind === 'slurm' ? `Slurm job ${meta.slurm?.job_id}` : host };
  } catch (error) {
    transport.close();
    throw error;
  }
}
