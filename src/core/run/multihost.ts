/**
 * A sweep spread over several hosts: a queue of points, one worker per host taking one point at a
 * time. Each point runs as its own agent run on its host; its events go to an attempt folder first and
 * join the run's events when the point is done, so a host that fails mid-point hands that point to
 * another host and every point is counted once. The failed attempt's data stays in its folder.
 *
 * The attempt folders also make the run resumable: after a restart, `MultiHostRun.resume` follows each
 * attempt still running on its host from its stored offset, and queues the points nobody measured.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedPoint } from '../config/model';
import { readEventsSync, readMeta, RunWriter, type RemoteHandle, type RunStore } from '../store/store';
import type { Transport } from '../transport/types';
import { TransportError } from '../transport/types';
import { silentLogger, type Logger } from '../util/logger';
import type { AgentEvent } from '../protocol/events';
import { AgentFollower, type FollowOptions, type RunListener, type RunOutcome } from './follower';
import { launchAgent, type RunSpec } from './launch';
import { installAgent, type InstalledAgent } from './remote';
import { createRunRecord, openStoredRun, replayStored, summarizerForStoredRun } from './stored';
import { Summarizer } from './summarize';

export interface MultiHostOptions extends RunSpec {
  hosts: string[];
  transportFor: (host: string) => Transport;
  /** See MultiHostResumeOptions: a resumed run asks before it starts points nobody started. */
  confirmQueued?: (points: number) => Promise<boolean>;
}

export interface MultiHostResumeOptions extends FollowOptions {
  store: RunStore;
  runId: string;
  agentSource: string;
  transportFor: (host: string) => Transport;
  /** Resolves dataset paths written relative to the config, for the points still to start. */
  resolveLocal: (relative: string) => string;
  listener?: RunListener;
  /**
   * Asked once, before any point nobody started is started on a host: following the points in flight
   * only reads, but starting new ones runs the config's commands, which nobody asked for by opening a window.
   */
  confirmQueued?: (points: number) => Promise<boolean>;
}

/** A point's run on one host, as its attempt folder records it. */
interface Attempt {
  n: number;
  host: string;
  point: ResolvedPoint;
  writer: RunWriter;
  summary: Summarizer;
  handle: RemoteHandle;
}

interface HostWorker {
  host: string;
  transport: Transport;
  agent?: InstalledAgent;
  failed?: string;
  current?: AgentFollower;
  /** Attempts this host was running when the last window went away, to follow before taking new points. */
  unfinished: Attempt[];
}

interface ResumedState {
  writer: RunWriter;
  summarizer: Summarizer;
  measured: Set<string>;
  unfinished: Attempt[];
  attempts: number;
}

export class MultiHostRun {
  readonly id: string;
  readonly writer: RunWriter;
  readonly summarizer: Summarizer;
  readonly done: Promise<RunOutcome>;
  private readonly workers: HostWorker[];
  private readonly queue: ResolvedPoint[];
  private cancelled = false;
  private detached = false;
  private attempts = 0;
  private readonly log: Logger;
  private approval?: Promise<boolean>;
  /** Points left unmeasured because the user chose not to start them after a restart. */
  private declined = 0;

  constructor(
    private readonly options: MultiHostOptions,
    resumed?: ResumedState,
  ) {
    this.log = options.logger ?? silentLogger;
    if (resumed) {
      ({ writer: this.writer, summarizer: this.summarizer, attempts: this.attempts } = resumed);
    } else {
      ({ writer: this.writer, summarizer: this.summarizer } = createRunRecord(options, options.hosts.join(', ')));
      this.writer.updateMeta({ hosts: options.hosts });
    }
    this.id = this.writer.id;
    const busy = new Set(resumed?.unfinished.map((a) => a.point.id));
    this.queue = options.points.filter((p) => !resumed?.measured.has(p.id) && !busy.has(p.id));
    this.workers = options.hosts.map((host) => ({
      host,
      transport: options.transportFor(host),
      unfinished: resumed?.unfinished.filter((a) => a.host === host) ?? [],
    }));
    this.done = this.execute();
  }

  /**
   * Goes on with a run over several hosts that was left when Wattbench stopped: points already measured
   * stay, attempts still running are followed from where their stored events end, the rest are queued.
   */
  static resume(options: MultiHostResumeOptions): MultiHostRun {
    const writer = options.store.open(options.runId);
    const meta = writer.meta;
    const hosts = meta.hosts ?? [];
    if (!hosts.length) throw new Error(`run ${options.runId} does not say which hosts it ran on`);
    const stored = openStoredRun(writer.dir, meta);
    const { config, configText, points } = stored;
    if (!config || configText === undefined) throw new Error(`run ${options.runId}: its stored config.yaml no longer validates`);
    const summarizer = summarizerForStoredRun(stored);
    for (const event of readEventsSync(writer.dir)) summarizer.add(event);
    const measured = new Set(summarizer.result().points.map((p) => p.point));
    const { unfinished, attempts } = readAttempts(writer.dir, points, measured);
    writer.note(
      `resumed after a restart: ${measured.size} of ${points.length} point(s) measured, ` +
        `${unfinished.length ? `following ${unfinished.map((a) => `${a.point.id} on ${a.host}`).join(', ')}` : 'none in flight'}`,
    );
    writer.updateMeta({ status: 'running' });
    return new MultiHostRun({ ...options, hosts, configText, config, points }, { writer, summarizer, measured, unfinished, attempts });
  }

  private async execute(): Promise<RunOutcome> {
    await Promise.all(this.workers.map((w) => this.work(w)));
    for (const w of this.workers) w.transport.close();
    const summary = this.summarizer.result();
    this.writer.writeSummary(summary);
    if (this.detached) {
      // Left running on the hosts for the next window to resume; the meta keeps status "running".
      this.writer.updateMeta({});
      this.writer.close();
      this.options.listener?.onPhase?.('detached');
      return { status: 'detached', summary };
    }
    const measured = new Set(summary.points.map((p) => p.point));
    const missing = this.options.points.filter((p) => !measured.has(p.id));
    const failedPoints = summary.points.filter((p) => p.status !== 'ok');
    const status = this.cancelled || this.declined ? 'cancelled' : missing.length || failedPoints.length ? 'error' : 'ok';
    const why = this.declined
      ? `${missing.length} point(s) not measured: you chose not to resume them after the restart`
      : `${missing.length} point(s) not measured: every host failed (${this.workers.map((w) => `${w.host}: ${w.failed ?? 'ok'}`).join('; ')})`;
    this.writer.updateMeta({
      status,
      ended: new Date().toISOString(),
      ...(missing.length && !this.cancelled && { error: why }),
    });
    this.writer.close();
    this.options.listener?.onPhase?.('finished', status);
    return { status, summary };
  }

  private get stopping(): boolean {
    return this.cancelled || this.detached;
  }

  private async work(worker: HostWorker): Promise<void> {
    for (const attempt of worker.unfinished.splice(0)) {
      if (this.stopping || worker.failed) {
        attempt.writer.close();
        continue;
      }
      await this.guarded(worker, attempt.point, async () => {
        worker.agent ??= await installAgent(worker.transport, this.options.agentSource);
        await this.follow(worker, worker.agent, attempt);
      });
    }
    while (!this.stopping && !worker.failed) {
      if (this.queue.length && !(await this.queueApproved())) return;
      const point = this.queue.shift();
      if (!point) return;
      await this.guarded(worker, point, () => this.attempt(worker, point));
    }
  }

  private queueApproved(): Promise<boolean> {
    const confirm = this.options.confirmQueued;
    if (!confirm) return Promise.resolve(true);
    this.approval ??= confirm(this.queue.length).then(
      (yes) => {
        if (!yes) {
          this.declined = this.queue.length;
          this.queue.length = 0;
          this.writer.note(`${this.declined} point(s) not started after the restart: you chose not to resume them`);
        }
        return yes;
      },
      () => false,
    );
    return this.approval;
  }

  /** A host that fails gives its point back to the queue and takes no more. */
  private async guarded(worker: HostWorker, point: ResolvedPoint, measure: () => Promise<void>): Promise<void> {
    try {
      await measure();
    } catch (error) {
      worker.failed = (error as Error).message;
      this.queue.unshift(point);
      const others = this.workers.filter((w) => !w.failed).map((w) => w.host);
      const message = `${worker.host} failed while measuring ${point.id} (${worker.failed}); ${others.length ? `its remaining points go to ${others.join(', ')}` : 'no host is left'}`;
      this.log.warn(message);
      this.writer.note(message);
      this.options.listener?.onProblem?.(message);
    }
  }

  private async attempt(worker: HostWorker, point: ResolvedPoint): Promise<void> {
    const n = ++this.attempts;
    const attemptId = `${this.id}-p${n}`;
    const { agent, runDir, pid } = await launchAgent(worker.transport, attemptId, this.options, [point], { agent: worker.agent });
    worker.agent = agent;
    const handle: RemoteHandle = { host: worker.host, runDir, pid, offset: 0, nextSeq: 0, node: worker.host };
    this.writer.updateMeta((m) => {
      m.remotes.push(handle);
      const entry = m.points.find((p) => p.id === point.id);
      if (entry) entry.host = worker.host;
    });
    const attemptDir = join(this.writer.dir, 'attempts', `${n}-${fileSafe(worker.host)}-${point.id}`);
    mkdirSync(attemptDir, { recursive: true });
    const meta = this.writer.meta;
    const writer = new RunWriter(attemptDir, {
      ...meta,
      run_id: attemptId,
      target: worker.host,
      points: meta.points.filter((p) => p.id === point.id),
      remotes: [handle],
      notes: [],
    });
    writer.updateMeta({});
    await this.follow(worker, agent, { n, host: worker.host, point, writer, summary: new Summarizer(), handle });
  }

  /** Follows an attempt to its end; a finished point joins the run, a lost one throws for `guarded`. */
  private async follow(worker: HostWorker, agent: InstalledAgent, attempt: Attempt): Promise<void> {
    if (this.detached) {
      // The window went away while this attempt was being started: the next window resumes it.
      attempt.writer.close();
      return;
    }
    const follower = new AgentFollower(agent, attempt.writer, attempt.handle, attempt.summary, this.forwarding(), { ...this.options, reconnectForMs: this.options.reconnectForMs ?? 20_000 });
    worker.current = follower;
    // Cancel can come while this attempt was still being installed or started.
    if (this.cancelled) void follower.cancel();
    let ended: boolean;
    try {
      ended = await follower.follow();
    } finally {
      worker.current = undefined;
    }
    if (!ended && this.detached) {
      attempt.writer.close();
      return;
    }
    try {
      if (!ended) throw new TransportError(`lost the connection and could not get it back`, 'disconnected');
      if (!follower.sawDone && !this.cancelled) {
        // The host is left as it was found before the point goes elsewhere: server stopped, limits restored.
        const cleaned = await follower.cleanUpAfterDeadAgent();
        throw new Error(`the agent stopped without finishing the point; ${cleaned}`);
      }
      await follower.collectLogs(`${fileSafe(attempt.host)}-${attempt.point.id}`);
      attempt.writer.updateMeta({ status: follower.doneStatus ?? 'cancelled', ended: new Date().toISOString() });
    } catch (error) {
      attempt.writer.updateMeta({ status: 'error', ended: new Date().toISOString(), error: (error as Error).message });
      throw error;
    } finally {
      attempt.writer.close();
    }
    this.accept(attempt.writer.dir);
  }

  /** A finished point joins the run: its events into the run's file and summary. */
  private accept(attemptDir: string): void {
    const lines = readFileSync(join(attemptDir, 'events.ndjson'), 'utf8').split('\n').filter(Boolean);
    this.writer.appendLines(lines);
    this.writer.sync();
    for (const line of lines) this.summarizer.add(JSON.parse(line) as AgentEvent);
  }

  private forwarding(): RunListener {
    return {
      onEvent: (event) => this.options.listener?.onEvent?.(event),
      onPhase: (phase, detail) => phase !== 'finished' && phase !== 'detached' && this.options.listener?.onPhase?.(phase, detail),
      onProblem: (message) => this.options.listener?.onProblem?.(message),
    };
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    this.queue.length = 0;
    await Promise.all(this.workers.map((w) => w.current?.cancel()));
  }

  /** Stops following without touching the hosts; `resume` goes on from here. */
  detach(): void {
    this.detached = true;
    for (const w of this.workers) w.current?.detach();
  }
}

/** A host as part of a file name (aliases may hold @ or :). */
const fileSafe = (host: string) => host.replace(/[^A-Za-z0-9._-]/g, '_');

/**
 * The attempts of a stored run still marked running whose point was not measured: each is followed
 * again from its stored offset, its summary rebuilt from the events it already has.
 */
function readAttempts(runDir: string, points: ResolvedPoint[], measured: Set<string>): { unfinished: Attempt[]; attempts: number } {
  const root = join(runDir, 'attempts');
  const unfinished: Attempt[] = [];
  let attempts = 0;
  if (!existsSync(root)) return { unfinished, attempts };
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    if (!existsSync(join(dir, 'meta.json'))) continue;
    const meta = readMeta(dir);
    const n = Number(/-p(\d+)$/.exec(meta.run_id)?.[1] ?? 0);
    attempts = Math.max(attempts, n);
    const point = points.find((p) => p.id === meta.points[0]?.id);
    const handle = meta.remotes[0];
    if (meta.status !== 'running' || !point || measured.has(point.id) || !handle?.pid) continue;
    const summary = new Summarizer();
    replayStored(dir, summary, [handle]);
    unfinished.push({ n, host: meta.target, point, writer: new RunWriter(dir, meta), summary, handle });
  }
  unfinished.sort((a, b) => a.n - b.n);
  return { unfinished, attempts };
}
