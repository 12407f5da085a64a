/**
 * Following one agent's event file into a run: tail by byte offset (or poll, for Slurm nodes), resume
 * after dropped connections, write events before the offsets that cover them, cancel cleanly.
 */
import type { RunStatus, RunWriter, RemoteHandle } from '../store/store';
import { silentLogger, type Logger } from '../util/logger';
import { sleep } from '../util/sleep';
import type { AgentEvent } from '../protocol/events';
import {
  fetchText,
  isAlive,
  isDisconnect,
  readEventsFrom,
  restoreCaps,
  signalAgent,
  stopLeftoverServer,
  tailEvents,
  type InstalledAgent,
} from './remote';
import { shq } from '../transport/shell';
import { EventStream, type StreamProblem } from './stream';
import type { RunSummary } from '../protocol/summary';
import type { Summarizer } from './summarize';

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
    for (let attempt = 0; ; attempt++) {
      this.stream.resetPartial();
      if (attempt > 0) await this.rewindIfShrunk();
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
        await this.rewindIfShrunk();
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
   * A file shorter than the bytes already received was truncated or replaced on the host: resuming at the
   * old offset would skip everything written since. Read it again from the start; seq drops what was seen.
   */
  private async rewindIfShrunk(): Promise<void> {
    const t = this.agent.transport;
    const result = await t.exec(`stat -c %s ${shq(`${this.handle.runDir}/events.ndjson`)} 2>/dev/null || echo gone`, { timeoutMs: 15_000 }).catch(() => undefined);
    const size = Number(result?.stdout.trim());
    if (!Number.isFinite(size) || size >= this.stream.offset) return;
    const message = `${t.label}: the event file shrank to ${size} bytes (it was ${this.stream.offset} bytes): truncated or replaced on the host; reading it again from the start, seq drops what was already received`;
    this.summarizer.problems.push(message);
    this.log.warn(message);
    this.writer.note(message);
    this.stream.rewind();
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
      // The server runs in a session of its own: killing the agent's group leaves it, so stop it too.
      const cleaned = await this.cleanUpAfterDeadAgent();
      this.writer.note(`the agent on ${t.label} did not stop within the grace time and was killed; ${cleaned}`);
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

  /** Why an agent stopped without `done`, where the host can tell: its run directory deleted under it. */
  async whyNoDone(): Promise<string> {
    const dir = this.handle.runDir;
    const result = await this.agent.transport.exec(`test -d ${shq(dir)} && echo present || echo gone`).catch(() => undefined);
    return result?.stdout.includes('gone')
      ? `the run directory ${dir} on ${this.handle.host} was deleted while the run went on, so the agent could not go on`
      : `the agent on ${this.handle.host} stopped without finishing its run (see agent.log in the run folder)`;
  }

  /** After an agent died hard: stop the server it left behind and put back any power limits it changed. */
  async cleanUpAfterDeadAgent(): Promise<string> {
    const said: string[] = [];
    try {
      said.push(await stopLeftoverServer(this.agent, this.handle.runDir));
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
