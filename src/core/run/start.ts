/** Starts a run on whatever the config targets: one host, several hosts, or a Slurm cluster. */
import type { ResolvedConfig } from '../config/model';
import { SlurmRun } from '../slurm/run';
import type { RunWriter } from '../store/store';
import type { Transport } from '../transport/types';
import { MultiHostRun } from './multihost';
import { Run, type RunOutcome, type RunSpec } from './session';
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

export function startRun(options: StartRunOptions): RunHandle {
  const { config, host } = options;
  const target = config.target;
  if (!host && target.kind === 'hosts') return new MultiHostRun({ ...options, hosts: target.hosts });
  const closing = <T extends RunHandle>(run: T, transport: Transport): T => {
    run.done.finally(() => transport.close()).catch(() => undefined);
    return run;
  };
  if (!host && target.kind === 'slurm') {
    const login = options.transportFor(target.slurm.login);
    return closing(new SlurmRun({ ...options, transport: login, slurm: target.slurm }), login);
  }
  const single = host ?? (target.kind === 'ssh' ? target.host : 'local');
  const transport = options.transportFor(single);
  return closing(Run.start({ ...options, transport, target: single }), transport);
}
