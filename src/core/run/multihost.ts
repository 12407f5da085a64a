/**
 * A sweep spread over several hosts: a queue of points, one worker per host taking one point at a
 * time. Each point runs as its own agent run on its host; its events go to an attempt folder first and
 * join the run's events when the point is done, so a host that fails mid-point hands that point to
 * another host and every point is counted once. The failed attempt's data stays in its folder.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedPoint } from '../config/model';
import { RunWriter, type RemoteHandle } from '../store/store';
import type { Transport } from '../transport/types';
import { TransportError } from '../transport/types';
import { silentLogger, type Logger } from '../util/logger';
import type { AgentEvent } from './events';
import { buildJob } from './job';
import { installAgent, remoteRunDir, startAgent, uploadRunFiles, type InstalledAgent } from './remote';
import { AgentFollower, type RunListener, type RunOutcome } from './follower';
import { createRunRecord, type RunSpec } from './session';
import { Summarizer } from './summarize';

export interface MultiHostOptions extends RunSpec {
  hosts: string[];
  transportFor: (host: string) => Transport;
}

interface HostWorker {
  host: string;
  transport: Transport;
  agent?: InstalledAgent;
  failed?: string;
  current?: AgentFollower;
}

export class MultiHostRun {
  readonly id: string;
  readonly writer: RunWriter;
  readonly summarizer: Summarizer;
  readonly done: Promise<RunOutcome>;
  private readonly workers: HostWorker[];
  private readonly queue: ResolvedPoint[];
  private cancelled = false;
  private attempts = 0;
  private readonly log: Logger;

  constructor(private readonly options: MultiHostOptions) {
    this.log = options.logger ?? silentLogger;
    ({ writer: this.writer, summarizer: this.summarizer } = createRunRecord(options, options.hosts.join(', ')));
    this.id = this.writer.id;
    this.queue = [...options.points];
    this.workers = options.hosts.map((host) => ({ host, transport: options.transportFor(host) }));
    this.done = this.execute();
  }

  private async execute(): Promise<RunOutcome> {
    await Promise.all(this.workers.map((w) => this.work(w)));
    for (const w of this.workers) w.transport.close();
    const measured = new Set(this.summarizer.result().points.map((p) => p.point));
    const missing = this.options.points.filter((p) => !measured.has(p.id));
    const summary = this.summarizer.result();
    this.writer.writeSummary(summary);
    const failedPoints = summary.points.filter((p) => p.status !== 'ok');
    const status = this.cancelled ? 'cancelled' : missing.length || failedPoints.length ? 'error' : 'ok';
    this.writer.updateMeta({
      status,
      ended: new Date().toISOString(),
      ...(missing.length && !this.cancelled && { error: `${missing.length} point(s) not measured: every host failed (${this.workers.map((w) => `${w.host}: ${w.failed ?? 'ok'}`).join('; ')})` }),
    });
    this.writer.close();
    this.options.listener?.onPhase?.('finished', status);
    return { status, summary };
  }

  private async work(worker: HostWorker): Promise<void> {
    while (!this.cancelled && !worker.failed) {
      const point = this.queue.shift();
      if (!point) return;
      try {
        await this.attempt(worker, point);
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
  }

  private async attempt(worker: HostWorker, point: ResolvedPoint): Promise<void> {
    const n = ++this.attempts;
    worker.agent ??= await installAgent(worker.transport, this.options.agentSource);
    const agent = worker.agent;
    const attemptId = `${this.id}-p${n}`;
    const runDir = remoteRunDir(agent, attemptId);
    const { job, files } = buildJob(attemptId, this.options.config, [point], this.options.resolveLocal);
    const uploads = new Map<string, Buffer | string>([['job.json', JSON.stringify(job, null, 2)]]);
    for (const [name, local] of files) uploads.set(name, readFileSync(local));
    await uploadRunFiles(agent, runDir, uploads);
    const pid = await startAgent(agent, runDir);
    const handle: RemoteHandle = { host: worker.host, runDir, pid, offset: 0, nextSeq: 0, node: worker.host };
    this.writer.updateMeta((m) => {
      m.remotes.push(handle);
      const entry = m.points.find((p) => p.id === point.id);
      if (entry) entry.host = worker.host;
    });
    const attemptDir = join(this.writer.dir, 'attempts', `${n}-${worker.host.replace(/[^A-Za-z0-9._-]/g, '_')}-${point.id}`);
    mkdirSync(attemptDir, { recursive: true });
    const attemptWriter = new RunWriter(attemptDir, { ...this.writer.meta, run_id: attemptId, remotes: [handle], notes: [] });
    const attemptSummary = new Summarizer();
    const follower = new AgentFollower(agent, attemptWriter, handle, attemptSummary, this.forwarding(), { ...this.options, reconnectForMs: this.options.reconnectForMs ?? 20_000 });
    worker.current = follower;
    const ended = await follower.follow();
    worker.current = undefined;
    attemptWriter.close();
    if (!ended) throw new TransportError(`lost the connection and could not get it back`, 'disconnected');
    if (!follower.sawDone && !this.cancelled) throw new Error('the agent stopped without finishing the point');
    await follower.collectLogs(`${worker.host.replace(/[^A-Za-z0-9._-]/g, '_')}-${point.id}`);
    this.accept(attemptDir);
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
      onPhase: (phase, detail) => phase !== 'finished' && this.options.listener?.onPhase?.(phase, detail),
      onProblem: (message) => this.options.listener?.onProblem?.(message),
    };
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    this.queue.length = 0;
    await Promise.all(this.workers.map((w) => w.current?.cancel()));
  }

  detach(): void {
    for (const w of this.workers) w.current?.detach();
  }
}
