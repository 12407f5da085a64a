/**
 * One run of a config on one host: install and start the agent, follow its events into the store
 * (resuming by byte offset after a dropped connection), summarise as it goes, and cancel cleanly.
 * The extension, the CLI and the multi-host scheduler all drive runs through this.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config';
import type { ResolvedConfig, ResolvedPoint } from '../config/model';
import type { RunMeta, RunStatus, RunStore, RunWriter, RemoteHandle } from '../store/store';
import { newRunId, readEventsSync } from '../store/store';
import type { Transport } from '../transport/types';
import { silentLogger, type Logger } from '../util/logger';
import { buildJob } from './job';
import { AgentFollower, type FollowOptions, type RunListener, type RunOutcome } from './follower';
import { installAgent, remoteRunDir, startAgent, uploadRunFiles } from './remote';
import { Summarizer } from './summarize';

export { AgentFollower, type FollowOptions, type RunListener, type RunOutcome, type RunPhase } from './follower';

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

/** The run's folder in the store, with its meta as it starts, and a summarizer priced for it. */
export function createRunRecord(spec: RunSpec, target: string, id = newRunId(spec.config.name)): { writer: RunWriter; summarizer: Summarizer } {
  const writer = spec.store.create(
    {
      run_id: id,
      config_name: spec.config.name,
      config_file: spec.configFile,
      target,
      status: 'running',
      started: new Date().toISOString(),
      points: spec.points.map((p) => ({ id: p.id, label: p.label, params: p.params as Record<string, unknown>, power_cap_w: p.powerCapW })),
      remotes: [],
      predictions: spec.predictions,
      notes: [],
    },
    spec.configText,
  );
  return { writer, summarizer: summarizerFor(spec.config, spec.points) };
}

/** A summarizer priced with the config's cost settings, showing each point's power cap; per node over several hosts. */
export function summarizerFor(config: ResolvedConfig, points: ResolvedPoint[]): Summarizer {
  return new Summarizer({ cost: config.cost, powerCaps: Object.fromEntries(points.map((p) => [p.id, p.powerCapW])), pointsPerNode: config.target.kind === 'hosts' });
}

/**
 * The summarizer for a stored run, priced as it was when it ran (from its config.yaml), so re-summarising
 * gives the figures the run itself wrote.
 */
export function summarizerForStoredRun(dir: string, meta: RunMeta): Summarizer {
  const configPath = join(dir, 'config.yaml');
  const loaded = existsSync(configPath) ? loadConfig(readFileSync(configPath, 'utf8')) : undefined;
  if (loaded?.config) return summarizerFor(loaded.config, loaded.points);
  return new Summarizer({ powerCaps: Object.fromEntries(meta.points.map((p) => [p.id, p.power_cap_w])), pointsPerNode: !!meta.hosts?.length });
}

export interface StartOptions extends RunSpec {
  transport: Transport;
  /** The target as the user wrote it, for meta and reattaching. */
  target: string;
  runId?: string;
}

/** A run on one host, from plan to stored summary. */
export class Run {
  readonly id: string;
  readonly writer: RunWriter;
  readonly summarizer: Summarizer;
  private follower?: AgentFollower;
  private cancelRequested = false;
  private readonly listener: RunListener;
  readonly done: Promise<RunOutcome>;

  private constructor(
    private readonly options: StartOptions,
  ) {
    this.listener = options.listener ?? {};
    ({ writer: this.writer, summarizer: this.summarizer } = createRunRecord(options, options.target, options.runId));
    this.id = this.writer.id;
    this.done = this.execute();
  }

  static start(options: StartOptions): Run {
    return new Run(options);
  }

  private get log(): Logger {
    return this.options.logger ?? silentLogger;
  }

  private async execute(): Promise<RunOutcome> {
    const { transport, config, points } = this.options;
    try {
      this.listener.onPhase?.('installing', transport.label);
      const agent = await installAgent(transport, this.options.agentSource);
      this.log.info(`agent ready on ${transport.label} (${agent.path}, Python ${agent.python})`);
      const runDir = remoteRunDir(agent, this.id);
      const { job, files } = buildJob(this.id, config, points, this.options.resolveLocal);
      const uploads = new Map<string, Buffer | string>([['job.json', JSON.stringify(job, null, 2)]]);
      for (const [name, local] of files) uploads.set(name, readFileSync(local));
      this.writer.attach('job.json', JSON.stringify(job, null, 2));
      this.listener.onPhase?.('starting', transport.label);
      await uploadRunFiles(agent, runDir, uploads);
      if (this.cancelRequested) throw new CancelledBeforeStart();
      const pid = await startAgent(agent, runDir);
      const handle: RemoteHandle = { host: this.options.target, runDir, pid, offset: 0, nextSeq: 0 };
      this.writer.updateMeta((m) => m.remotes.push(handle));
      this.log.info(`run ${this.id} started on ${transport.label}: agent pid ${pid}, ${runDir}`);
      this.follower = new AgentFollower(agent, this.writer, handle, this.summarizer, this.listener, this.options);
      this.listener.onPhase?.('running');
      if (this.cancelRequested) void this.follower.cancel();
      return await finishFollowing(this.follower, this.writer, this.summarizer, this.listener, this.log);
    } catch (error) {
      const cancelled = error instanceof CancelledBeforeStart;
      const message = cancelled ? 'cancelled before the agent started' : (error as Error).message;
      if (!cancelled) this.log.error(`run ${this.id} on ${transport.label}: ${message}`);
      const summary = this.summarizer.result();
      this.writer.writeSummary(summary);
      this.writer.updateMeta({ status: cancelled ? 'cancelled' : 'error', ended: new Date().toISOString(), error: cancelled ? undefined : message });
      this.writer.close();
      this.listener.onPhase?.('finished', message);
      if (cancelled) return { status: 'cancelled', summary };
      throw error;
    }
  }

  async cancel(): Promise<void> {
    this.cancelRequested = true;
    this.listener.onPhase?.('cancelling');
    await this.follower?.cancel();
  }

  /** Leaves the run going on its host; it is reattached the next time Wattbench starts. */
  detach(): void {
    this.follower?.detach();
  }
}

class CancelledBeforeStart extends Error {}

/** Follows to the end, then writes the outcome (shared by new runs and reattached ones). */
export async function finishFollowing(follower: AgentFollower, writer: RunWriter, summarizer: Summarizer, listener: RunListener, log: Logger): Promise<RunOutcome> {
  const ended = await follower.follow();
  if (!ended) {
    const summary = summarizer.result();
    writer.writeSummary(summary);
    writer.updateMeta({});
    writer.close();
    listener.onPhase?.('detached');
    return { status: 'detached', summary };
  }
  await follower.collectLogs(follower.handle.node);
  let status: RunStatus = follower.doneStatus ?? 'error';
  if (!follower.sawDone) {
    status = 'error';
    const cleaned = await follower.cleanUpAfterDeadAgent();
    writer.updateMeta({ error: `the agent on ${follower.handle.host} stopped without finishing its run (see agent.log in the run folder); ${cleaned}` });
    log.error(`the agent on ${follower.handle.host} stopped without a "done" event; ${cleaned}`);
  }
  const summary = summarizer.result();
  writer.writeSummary(summary);
  writer.updateMeta({ status, ended: new Date().toISOString() });
  writer.close();
  listener.onPhase?.('finished', status);
  return { status, summary };
}


/**
 * Feeds a stored run's (or attempt's) events into `summarizer` before following it again, and moves
 * `handle` past them: the stored file may hold events past the offset last written to meta, and seq
 * settles which are new.
 */
export function replayStored(dir: string, summarizer: Summarizer, handle: RemoteHandle): void {
  let lastSeq = -1;
  for (const event of readEventsSync(dir)) {
    summarizer.add(event);
    lastSeq = Math.max(lastSeq, event.seq);
  }
  handle.nextSeq = Math.max(handle.nextSeq, lastSeq + 1);
}

export interface ReattachOptions extends FollowOptions {
  store: RunStore;
  runId: string;
  transport: Transport;
  agentSource: string;
  listener?: RunListener;
}

/**
 * Picks up a run that is still going (or ended) on its host after the extension or CLI restarted:
 * replays what is stored, then follows the remote file from the stored offset.
 */
export async function reattachRun(options: ReattachOptions): Promise<{ writer: RunWriter; summarizer: Summarizer; follower: AgentFollower; done: Promise<RunOutcome> }> {
  const writer = options.store.open(options.runId);
  const meta = writer.meta;
  const handle = meta.remotes[0];
  if (!handle?.pid) throw new Error(`run ${options.runId} has no agent to reattach to`);
  const summarizer = summarizerForStoredRun(writer.dir, meta);
  replayStored(writer.dir, summarizer, handle);
  const agent = await installAgent(options.transport, options.agentSource);
  const listener = options.listener ?? {};
  const follower = new AgentFollower(agent, writer, handle, summarizer, listener, options);
  writer.note(`reattached at byte ${handle.offset} (seq ${handle.nextSeq})`);
  writer.updateMeta({ status: 'running' });
  const log = options.logger ?? silentLogger;
  return { writer, summarizer, follower, done: finishFollowing(follower, writer, summarizer, listener, log) };
}

/**
 * Runs the store says were still going when last seen, by how each is followed again: single-host
 * runs, sweeps over several hosts, Slurm jobs; runs that cannot be (their record predates `hosts`)
 * are returned apart so the caller can say so.
 */
export function runsToReattach(store: RunStore): { reattachable: RunMeta[]; multihost: RunMeta[]; slurm: RunMeta[]; orphaned: RunMeta[] } {
  const running = store.list().map((r) => r.meta).filter((m) => m.status === 'running');
  const slurm = (m: RunMeta) => !!m.slurm?.job_id;
  const multihost = (m: RunMeta) => !slurm(m) && !!m.hosts?.length;
  const single = (m: RunMeta) => !slurm(m) && !multihost(m) && m.remotes.length === 1 && m.remotes[0].pid !== undefined && !m.remotes[0].node;
  return {
    reattachable: running.filter(single),
    multihost: running.filter(multihost),
    slurm: running.filter(slurm),
    orphaned: running.filter((m) => !single(m) && !slurm(m) && !multihost(m) && m.remotes.length > 0),
  };
}

/** Marks a run that cannot be followed again, saying where it may still be going. */
export function markOrphaned(store: RunStore, meta: RunMeta, reason = 'its record does not say how'): void {
  const writer = store.open(meta.run_id);
  const where = meta.target;
  writer.note(`Wattbench restarted while this run was going and cannot follow it again (${reason}); it may still be running on ${where}. What was received before is kept.`);
  writer.updateMeta({ status: 'lost', error: `lost track of the run when Wattbench restarted; it may still be running on ${where}` });
  writer.close();
}
