/**
 * One run of a config on one host: install and start the agent, follow its events into the store
 * (resuming by byte offset after a dropped connection), summarise as it goes, and cancel cleanly.
 * The extension, the CLI and the multi-host scheduler all drive runs through this.
 */
import { readFileSync } from 'node:fs';
import type { ResolvedConfig, ResolvedPoint } from '../config/model';
import type { RunMeta, RunStatus, RunStore, RunWriter, RemoteHandle } from '../store/store';
import { newRunId, readEventsSync } from '../store/store';
import type { Transport } from '../transport/types';
import { silentLogger, type Logger } from '../util/logger';
import type { AgentEvent } from './events';
import { buildJob } from './job';
import {
  fetchText,
  installAgent,
  isAlive,
  isDisconnect,
  readEventsFrom,
  remoteRunDir,
  restoreCaps,
  signalAgent,
  startAgent,
  tailEvents,
  stopLeftoverServer,
  uploadRunFiles,
  type InstalledAgent,
} from './remote';
import { EventStream, type StreamProblem } from './stream';
import { Summarizer, type RunSummary } from './summarize';

export type RunPhase = 'preparing' | 'installing' | 'starting' | 'running' | 'reconnecting' | 'cancelling' | 'finished' | 'detached';

export interface RunListener {
  onEvent?(event: AgentEvent): void;
  onPhase?(phase: RunPhase, detail?: string): void;
  onProblem?(message: string): void;
}

export interface FollowOptions {
  logger?: Logger;
  /** How long to keep trying to reconnect before leaving the run to be reattached later. */
  reconnectForMs?: number;
  /** Longest wait between reconnection attempts. */
  maxBackoffMs?: number;
  /** How long cancel waits for the agent's own clean-up before killing it. */
  cancelGraceMs?: number;
}

export interface RunOutcome {
  status: RunStatus | 'detached';
  summary: RunSummary;
}

const FLUSH_MS = 200;

/**
 * Follows one agent's event file into a run. Several of these can feed one run (nodes of a Slurm job,
 * hosts of a multi-host sweep); each tags its events with its node so streams stay apart.
 */
export class AgentFollower {
  private stream: EventStream;
  private pending: string[] = [];
  private flushTimer?: NodeJS.Timeout;
  private lastMetaWrite = 0;
  private stopCurrentTail?: () => void;
  private cancelled = false;
  private detached = false;
  sawDone = false;
  doneStatus?: 'ok' | 'error' | 'cancelled';

  constructor(
    private readonly agent: InstalledAgent,
    private readonly writer: RunWriter,
    readonly handle: RemoteHandle,
    private readonly summarizer: Summarizer,
    private readonly listener: RunListener,
    private readonly options: FollowOptions = {},
  ) {
    this.stream = new EventStream(
      { onEvent: (event, line) => this.onEvent(event, line), onProblem: (p) => this.onProblem(p) },
      { offset: handle.offset, nextSeq: handle.nextSeq },
    );
  }

  private get log(): Logger {
    return this.options.logger ?? silentLogger;
  }

  private onEvent(event: AgentEvent, line: string): void {
    if (this.handle.node) {
      event.node = this.handle.node;
      line = JSON.stringify(event);
    }
    this.pending.push(line);
    this.summarizer.add(event);
    if (event.type === 'hello' && event.pgid) this.handle.pgid = event.pgid;
    if (event.type === 'done') {
      this.sawDone = true;
      this.doneStatus = event.status;
    }
    this.listener.onEvent?.(event);
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private onProblem(problem: StreamProblem): void {
    // A resumed tail may repeat the last few lines: expected, and dropped by seq.
    if (problem.kind === 'duplicate') return this.log.debug(problem.message);
    const message = `${this.agent.transport.label}: ${problem.message}`;
    this.summarizer.problems.push(message);
    this.log.warn(message);
    this.listener.onProblem?.(message);
  }

  /** Events to disk first, then the offset that covers them: a crash in between only repeats events. */
  flush(force = false): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.length) {
      this.writer.appendLines(this.pending.splice(0));
      this.writer.sync();
    }
    this.handle.offset = this.stream.offset;
    this.handle.nextSeq = this.stream.nextSeq;
    const now = Date.now();
    if (force || now - this.lastMetaWrite > 1000) {
      this.lastMetaWrite = now;
      this.writer.updateMeta({});
    }
  }

  /** Tails until the agent ends (true) or the connection stays down past the reconnect window (false). */
  async follow(): Promise<boolean> {
    const t = this.agent.transport;
    const pid = this.handle.pid!;
    let failingSince: number | undefined;
    let backoff = 500;
    for (;;) {
      this.stream.resetPartial();
      const tail = tailEvents(t, this.handle.runDir, pid, this.stream.offset, (chunk) => {
        failingSince = undefined;
        backoff = 500;
        this.stream.push(chunk);
      });
      this.stopCurrentTail = tail.stop;
      try {
        await tail.done;
        if (this.detached) {
          this.flush(true);
          return false;
        }
        // tail ended because the agent exited: read what it wrote in its last moments.
        this.stream.resetPartial();
        this.stream.push(await readEventsFrom(t, this.handle.runDir, this.stream.offset));
        this.flush(true);
        return true;
      } catch (error) {
        if (!isDisconnect(error)) throw error;
        this.flush(true);
        if (this.detached) return false;
        if (this.cancelled) return true;
        failingSince ??= Date.now();
        const window = this.options.reconnectForMs ?? 10 * 60_000;
        if (Date.now() - failingSince > window) {
          this.log.warn(`giving up reconnecting to ${t.label} after ${Math.round(window / 1000)} s; the run goes on there and can be reattached`);
          return false;
        }
        this.listener.onPhase?.('reconnecting', `${t.label}: ${(error as Error).message}; retrying in ${Math.round(backoff / 100) / 10} s`);
        this.log.warn(`lost the event stream from ${t.label} (${(error as Error).message}); resuming at byte ${this.stream.offset}`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, this.options.maxBackoffMs ?? 15_000);
        if ('disconnect' in t && typeof t.disconnect === 'function') (t as { disconnect(): void }).disconnect();
        try {
          await t.exec('true', { timeoutMs: 15_000 });
          this.writer.note(`event stream from ${t.label} resumed at byte ${this.stream.offset} (seq ${this.stream.nextSeq})`);
          this.listener.onPhase?.('running');
        } catch (reconnectError) {
          this.log.debug(`reconnect to ${t.label} failed: ${(reconnectError as Error).message}`);
        }
      }
    }
  }

  /**
   * Follows by reading the file every `intervalMs`, for agents whose process is not on the host we talk
   * to (Slurm compute nodes behind a login node): ends when `finished()` says the producer is gone.
   */
  async followByPolling(finished: () => Promise<boolean>, intervalMs = 500): Promise<boolean> {
    const t = this.agent.transport;
    let failingSince: number | undefined;
    let backoff = 500;
    for (;;) {
      try {
        const over = await finished();
        this.stream.resetPartial();
        this.stream.push(await readEventsFrom(t, this.handle.runDir, this.stream.offset));
        this.flush();
        failingSince = undefined;
        backoff = 500;
        if (over || this.detached) {
          this.flush(true);
          return !this.detached;
        }
        await sleep(intervalMs);
      } catch (error) {
        if (!isDisconnect(error)) throw error;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > (this.options.reconnectForMs ?? 10 * 60_000)) return false;
        this.listener.onPhase?.('reconnecting', `${t.label}: ${(error as Error).message}`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, this.options.maxBackoffMs ?? 15_000);
        if ('disconnect' in t && typeof t.disconnect === 'function') (t as { disconnect(): void }).disconnect();
      }
    }
  }

  /** Asks the agent to stop; kills it if it has not finished its clean-up within the grace time. */
  async cancel(): Promise<void> {
    this.cancelled = true;
    const t = this.agent.transport;
    const pid = this.handle.pid;
    if (pid === undefined) return;
    await signalAgent(t, pid, 'TERM');
    const deadline = Date.now() + (this.options.cancelGraceMs ?? 60_000);
    while (Date.now() < deadline && (await isAlive(t, pid))) await sleep(250);
    if (await isAlive(t, pid)) {
      this.log.warn(`the agent on ${t.label} did not stop within the grace time; killing it and restoring power limits`);
      await t.exec(`kill -KILL -${Math.trunc(this.handle.pgid ?? pid)} 2>/dev/null; kill -KILL ${Math.trunc(pid)} 2>/dev/null; true`);
      await restoreCaps(this.agent);
    }
  }

  /** The agent's and the server's own logs, kept with the run. */
  async collectLogs(suffix = ''): Promise<void> {
    for (const name of ['server.log', 'agent.log']) {
      try {
        const text = await fetchText(this.agent.transport, `${this.handle.runDir}/${name}`);
        if (text) this.writer.attach(suffix ? name.replace('.log', `-${suffix}.log`) : name, text);
      } catch (error) {
        this.log.debug(`could not fetch ${name}: ${(error as Error).message}`);
      }
    }
  }

  /** After an agent died hard: stop the server it left behind and put back any power limits it changed. */
  async cleanUpAfterDeadAgent(): Promise<string> {
    const said: string[] = [];
    try {
      said.push(await stopLeftoverServer(this.agent.transport, this.handle.runDir));
    } catch (error) {
      said.push(`could not stop the server: ${(error as Error).message}`);
    }
    try {
      said.push(`power limits: ${await restoreCaps(this.agent)}`);
    } catch (error) {
      said.push(`could not run restore-caps: ${(error as Error).message}`);
    }
    return said.join('; ');
  }

  /** Stops following without touching the run on the host (the extension is going away). */
  detach(): void {
    this.detached = true;
    this.stopCurrentTail?.();
  }
}

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
  const summarizer = new Summarizer({ cost: spec.config.cost, powerCaps: Object.fromEntries(spec.points.map((p) => [p.id, p.powerCapW])) });
  return { writer, summarizer };
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
  const summarizer = new Summarizer({ powerCaps: Object.fromEntries(meta.points.map((p) => [p.id, p.power_cap_w])) });
  let lastSeq = -1;
  for (const event of readEventsSync(writer.dir)) {
    summarizer.add(event);
    lastSeq = Math.max(lastSeq, event.seq);
  }
  // The stored file may hold events past the last offset written to meta; seq settles which are new.
  handle.nextSeq = Math.max(handle.nextSeq, lastSeq + 1);
  const agent = await installAgent(options.transport, options.agentSource);
  const listener = options.listener ?? {};
  const follower = new AgentFollower(agent, writer, handle, summarizer, listener, options);
  writer.note(`reattached at byte ${handle.offset} (seq ${handle.nextSeq})`);
  writer.updateMeta({ status: 'running' });
  const log = options.logger ?? silentLogger;
  return { writer, summarizer, follower, done: finishFollowing(follower, writer, summarizer, listener, log) };
}

/**
 * Runs the store says were still going when last seen: single-host runs and Slurm jobs can be followed
 * again; runs over several hosts cannot yet, and are returned apart so the caller can say so.
 */
export function runsToReattach(store: RunStore): { reattachable: RunMeta[]; slurm: RunMeta[]; orphaned: RunMeta[] } {
  const running = store.list().map((r) => r.meta).filter((m) => m.status === 'running');
  const single = (m: RunMeta) => !m.slurm && m.remotes.length === 1 && m.remotes[0].pid !== undefined && !m.remotes[0].node;
  const slurm = (m: RunMeta) => !!m.slurm?.job_id;
  return {
    reattachable: running.filter(single),
    slurm: running.filter(slurm),
    orphaned: running.filter((m) => !single(m) && !slurm(m) && m.remotes.length > 0),
  };
}

/** Marks a run that cannot be followed again, saying where it may still be going. */
export function markOrphaned(store: RunStore, meta: RunMeta): void {
  const writer = store.open(meta.run_id);
  const where = meta.target;
  writer.note(`Wattbench restarted while this run was going and cannot reattach to runs over several hosts yet; it may still be running on ${where}. What was received before is kept.`);
  writer.updateMeta({ status: 'lost', error: `lost track of the run when Wattbench restarted; it may still be running on ${where}` });
  writer.close();
}
