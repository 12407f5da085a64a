/**
 * One run of a config on one host: install and start the agent, follow its events into the store
 * (resuming by byte offset after a dropped connection), summarise as it goes, and cancel cleanly.
 * Reattaching after a restart follows the same run again from its stored offset.
 */
import type { RunStatus, RunStore, RunWriter, RemoteHandle } from '../store/store';
import type { Transport } from '../transport/types';
import { silentLogger, type Logger } from '../util/logger';
import { AgentFollower, type FollowOptions, type RunListener, type RunOutcome } from './follower';
import { launchAgent, type RunSpec } from './launch';
import { installAgent } from './remote';
import { createRunRecord, openStoredRun, replayStored, summarizerForStoredRun } from './stored';
import type { Summarizer } from './summarize';

export interface StartOptions extends RunSpec {
  transport: Transport;
  /** The target as the user wrote it, for meta and reattaching. */
  target: string;
  runId?: string;
}

export interface ReattachOptions extends FollowOptions {
  store: RunStore;
  runId: string;
  transport: Transport;
  agentSource: string;
  listener?: RunListener;
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
    private readonly options: FollowOptions & { transport: Transport },
    record: { writer: RunWriter; summarizer: Summarizer },
    body: (run: Run) => Promise<RunOutcome>,
    listener: RunListener | undefined,
  ) {
    this.listener = listener ?? {};
    ({ writer: this.writer, summarizer: this.summarizer } = record);
    this.id = this.writer.id;
    this.done = body(this);
  }

  static start(options: StartOptions): Run {
    const record = createRunRecord(options, options.target, options.runId);
    return new Run(options, record, (run) => run.execute(options), options.listener);
  }

  /**
   * Picks up a run that is still going (or ended) on its host after the extension or CLI restarted:
   * replays what is stored, then follows the remote file from the stored offset. Resolves once the
   * agent is installed again, so a host that cannot be reached leaves the record as it was.
   */
  static async reattach(options: ReattachOptions): Promise<Run> {
    const writer = options.store.open(options.runId);
    const handle = writer.meta.remotes[0];
    if (!handle?.pid) throw new Error(`run ${options.runId} has no agent to reattach to`);
    const summarizer = summarizerForStoredRun(openStoredRun(writer.dir, writer.meta));
    replayStored(writer.dir, summarizer, [handle]);
    const agent = await installAgent(options.transport, options.agentSource);
    return new Run(
      options,
      { writer, summarizer },
      (run) => {
        run.follower = new AgentFollower(agent, writer, handle, summarizer, run.listener, options);
        writer.note(`reattached at byte ${handle.offset} (seq ${handle.nextSeq})`);
        writer.updateMeta({ status: 'running' });
        if (run.cancelRequested) void run.follower.cancel();
        return finishFollowing(run.follower, writer, summarizer, run.listener, run.log);
      },
      options.listener,
    );
  }

  private get log(): Logger {
    return this.options.logger ?? silentLogger;
  }

  private async execute(options: StartOptions): Promise<RunOutcome> {
    const { transport, points } = options;
    try {
      const launched = await launchAgent(transport, this.id, options, points, {
        listener: this.listener,
        beforeStart: () => {
          if (this.cancelRequested) throw new CancelledBeforeStart();
        },
      });
      this.log.info(`agent ready on ${transport.label} (${launched.agent.path}, Python ${launched.agent.python})`);
      if (launched.agent.replaced) this.log.warn(`replaced the agent cached on ${transport.label}: ${launched.agent.replaced}`);
      this.writer.attach('job.json', launched.jobText);
      const handle: RemoteHandle = { host: options.target, runDir: launched.runDir, pid: launched.pid, offset: 0, nextSeq: 0 };
      this.writer.updateMeta((m) => m.remotes.push(handle));
      this.log.info(`run ${this.id} started on ${transport.label}: agent pid ${launched.pid}, ${launched.runDir}`);
      this.follower = new AgentFollower(launched.agent, this.writer, handle, this.summarizer, this.listener, this.options);
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
async function finishFollowing(follower: AgentFollower, writer: RunWriter, summarizer: Summarizer, listener: RunListener, log: Logger): Promise<RunOutcome> {
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
    const why = await follower.whyNoDone();
    const cleaned = await follower.cleanUpAfterDeadAgent();
    writer.updateMeta({ error: `${why}; what was received before is kept; ${cleaned}` });
    log.error(`the agent on ${follower.handle.host} stopped without a "done" event; ${cleaned}`);
  }
  const summary = summarizer.result();
  writer.writeSummary(summary);
  writer.updateMeta({ status, ended: new Date().toISOString() });
  writer.close();
  listener.onPhase?.('finished', status);
  return { status, summary };
}
