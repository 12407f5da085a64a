/**
 * A run on a Slurm cluster through its login node: write the batch script (kept with the run), submit
 * it, follow the job, read every node's events from the shared filesystem, cancel with scancel.
 * Slurm is the scheduler; Wattbench only asks it.
 */
import type { SlurmTargetSpec } from '../config/model';
import { expandHostlist, parseScontrolJob, sbatchScript, secondsBetween, TERMINAL_STATES, type SlurmJobInfo } from '../slurm/sbatch';
import type { RemoteHandle, RunStatus, RunWriter } from '../store/store';
import { shq } from '../transport/shell';
import type { Transport } from '../transport/types';
import { silentLogger, type Logger } from '../util/logger';
import { sleep } from '../util/sleep';
import { AgentFollower, type RunOutcome } from './follower';
import { prepareRunDir, type RunSpec } from './launch';
import { fetchText, installAgent, type InstalledAgent } from './remote';
import { createRunRecord, openStoredRun, replayStored, summarizerForStoredRun } from './stored';
import type { Summarizer } from './summarize';

export interface SlurmRunOptions extends RunSpec {
  transport: Transport;
  slurm: SlurmTargetSpec;
  /** How often the job's state is asked for. */
  pollMs?: number;
}

export class SlurmError extends Error {}

export class SlurmRun {
  readonly id: string;
  readonly writer: RunWriter;
  readonly summarizer: Summarizer;
  readonly done: Promise<RunOutcome>;
  private jobId?: string;
  private cancelled = false;
  private detached = false;
  private info?: SlurmJobInfo;
  private readonly followers: AgentFollower[] = [];
  private readonly log: Logger;

  /** `existing`: a run already submitted, to follow again (reattach); otherwise a new one is submitted. */
  constructor(
    private readonly options: SlurmRunOptions,
    existing?: RunWriter,
  ) {
    this.log = options.logger ?? silentLogger;
    if (existing) {
      this.writer = existing;
      this.summarizer = summarizerForStoredRun(openStoredRun(existing.dir, existing.meta));
      replayStored(existing.dir, this.summarizer, existing.meta.remotes);
      this.jobId = existing.meta.slurm?.job_id;
    } else ({ writer: this.writer, summarizer: this.summarizer } = createRunRecord(options, `slurm:${options.slurm.login}`));
    this.id = this.writer.id;
    this.done = (existing ? this.resume() : this.execute()).catch((error: Error) => {
      const summary = this.summarizer.result();
      this.writer.writeSummary(summary);
      this.writer.updateMeta({ status: 'error', ended: new Date().toISOString(), error: error.message });
      this.writer.close();
      this.options.listener?.onPhase?.('finished', error.message);
      throw error;
    });
  }

  private async execute(): Promise<RunOutcome> {
    const { transport, slurm, config } = this.options;
    const listener = this.options.listener ?? {};
    listener.onPhase?.('installing', transport.label);
    const agent = await installAgent(transport, this.options.agentSource);
    const root = slurm.workdir ?? agent.home;
    const runDir = `${root}/runs/${this.id}`;
    const gpusPerNode = slurm.gpusPerNode ?? Math.ceil(config.gpus.count / slurm.nodes);
    const script = sbatchScript({ runId: this.id, runDir, agentPath: agent.path, slurm, gpusPerNode });
    this.writer.attach('sbatch.sh', script);
    const { jobText } = await prepareRunDir(agent, runDir, this.id, this.options, this.options.points, [['sbatch.sh', script]]);
    this.writer.attach('job.json', jobText);
    listener.onPhase?.('starting', `sbatch on ${transport.label}`);
    const submitted = await transport.exec(`cd ${shq(runDir)} && sbatch --parsable sbatch.sh`);
    const jobId = /^(\d+)/.exec(submitted.stdout.trim())?.[1];
    if (submitted.code !== 0 || !jobId)
      throw new SlurmError(`sbatch on ${transport.label} refused the job: ${(submitted.stderr || submitted.stdout).trim() || `exit ${submitted.code}`}`);
    this.jobId = jobId;
    this.writer.updateMeta({ slurm: { job_id: jobId, state: 'PENDING', submitted: new Date().toISOString() } });
    this.writer.note(`submitted Slurm job ${jobId} from ${transport.label}`);
    this.log.info(`run ${this.id}: Slurm job ${jobId} submitted`);
    if (this.cancelled) await this.scancel();
    return this.followJob(agent, runDir);
  }

  /** Picks up a submitted job after a restart: the stored offsets say where each node's events resume. */
  private async resume(): Promise<RunOutcome> {
    if (!this.jobId) throw new SlurmError(`run ${this.id} has no Slurm job to follow`);
    const agent = await installAgent(this.options.transport, this.options.agentSource);
    const runDir = `${this.options.slurm.workdir ?? agent.home}/runs/${this.id}`;
    this.writer.note(`reattached to Slurm job ${this.jobId}; resuming every node's events from the stored offsets`);
    this.writer.updateMeta({ status: 'running' });
    return this.followJob(agent, runDir);
  }

  private async followJob(agent: InstalledAgent, runDir: string): Promise<RunOutcome> {
    const { slurm } = this.options;
    const listener = this.options.listener ?? {};
    const jobId = this.jobId!;
    // Wait for the job to start (or to end without starting).
    let info = await this.poll();
    while (!TERMINAL_STATES.has(info.state) && info.state === 'PENDING') {
      listener.onPhase?.('starting', `Slurm job ${jobId} ${info.state}${info.reason ? ` (${info.reason})` : ''}`);
      await sleep(this.options.pollMs ?? 1000);
      info = await this.poll();
    }
    const nodes = Math.max(1, info.numNodes ?? slurm.nodes);
    listener.onPhase?.('running', `Slurm job ${jobId} on ${info.nodeList ?? `${nodes} node(s)`}`);
    for (let i = 0; i < nodes; i++) {
      let handle = this.writer.meta.remotes.find((h) => h.node === `node-${i}`);
      if (!handle) {
        const fresh: RemoteHandle = { host: slurm.login, runDir: `${runDir}/node-${i}`, offset: 0, nextSeq: 0, node: `node-${i}` };
        this.writer.updateMeta((m) => m.remotes.push(fresh));
        handle = fresh;
      }
      this.followers.push(new AgentFollower(agent, this.writer, handle, this.summarizer, listener, this.options));
    }
    let finished = TERMINAL_STATES.has(info.state);
    const watcher = (async () => {
      while (!finished && !this.detached) {
        await sleep(this.options.pollMs ?? 1000);
        info = await this.poll().catch(() => info);
        finished = TERMINAL_STATES.has(info.state);
      }
    })();
    const followed = await Promise.all(this.followers.map((f) => f.followByPolling(async () => finished, 500)));
    await watcher;
    if (this.detached) {
      // The job goes on; the next start follows it again from the offsets just written.
      const summary = this.summarizer.result();
      this.writer.writeSummary(summary);
      this.writer.close();
      this.options.listener?.onPhase?.('detached');
      return { status: 'detached', summary };
    }
    return this.finish(agent, runDir, info, followed.every(Boolean));
  }

  private async poll(): Promise<SlurmJobInfo> {
    const result = await this.options.transport.exec(`scontrol show job -o ${shq(this.jobId!)} 2>&1`);
    const parsed = parseScontrolJob(result.stdout);
    if (!parsed) {
      // Slurm forgets finished jobs after MinJobAge; the job's own files still tell how it went.
      if (/Invalid job id/i.test(result.stdout) && this.info) return { ...this.info, state: TERMINAL_STATES.has(this.info.state) ? this.info.state : 'COMPLETED' };
      throw new SlurmError(`scontrol on ${this.options.transport.label} could not describe job ${this.jobId}: ${result.stdout.trim()}`);
    }
    if (parsed.state !== this.info?.state) {
      const queueWait = secondsBetween(parsed.submitTime, parsed.startTime);
      this.writer.updateMeta((m) => {
        m.slurm = {
          job_id: this.jobId!,
          state: parsed.state,
          submitted: m.slurm?.submitted,
          started: parsed.startTime,
          queue_wait_s: parsed.state === 'PENDING' ? undefined : queueWait,
          nodes: parsed.nodeList ? expandHostlist(parsed.nodeList) : undefined,
        };
      });
      this.log.info(`Slurm job ${this.jobId}: ${parsed.state}${parsed.reason ? ` (${parsed.reason})` : ''}`);
    }
    this.info = parsed;
    return parsed;
  }

  private async finish(agent: InstalledAgent, runDir: string, info: SlurmJobInfo, followedAll: boolean): Promise<RunOutcome> {
    const output = await fetchText(agent.transport, `${runDir}/slurm-${this.jobId}.out`);
    if (output !== undefined) this.writer.attach(`slurm-${this.jobId}.out`, output);
    for (const f of this.followers) await f.collectLogs(f.handle.node);
    const summary = this.summarizer.result();
    this.writer.writeSummary(summary);
    const main = this.followers[0];
    let status: RunStatus = main?.doneStatus ?? 'error';
    let error: string | undefined;
    if (info.state === 'TIMEOUT') {
      status = 'error';
      error = `the Slurm job ${this.jobId} ran out of time (time_limit${this.options.slurm.timeLimitS ? ` ${this.options.slurm.timeLimitS} s` : ''}); what was measured before is kept`;
    } else if (info.state === 'CANCELLED' || this.cancelled) status = 'cancelled';
    else if (info.state !== 'COMPLETED') {
      status = 'error';
      error = `the Slurm job ${this.jobId} ended ${info.state} (exit ${info.exitCode ?? '?'}${info.reason ? `, ${info.reason}` : ''})${output ? `: ${output.trim().split('\n').slice(-3).join(' | ')}` : ''}`;
    } else if (!main?.sawDone) {
      status = 'error';
      error = `the Slurm job ${this.jobId} completed but the agent on node 0 did not finish its run${output ? `: ${output.trim().split('\n').slice(-3).join(' | ')}` : ''}`;
    }
    if (!followedAll) error ??= 'lost the login node and could not read every event back';
    this.writer.updateMeta((m) => {
      m.status = status;
      m.ended = new Date().toISOString();
      if (error) m.error = error;
      if (m.slurm) m.slurm.state = info.state;
    });
    this.writer.close();
    this.options.listener?.onPhase?.('finished', status);
    if (error) this.log.error(`run ${this.id}: ${error}`);
    return { status, summary };
  }

  /** Follows a stored Slurm run again after the extension or CLI restarted. */
  static reattach(base: Omit<SlurmRunOptions, 'configText' | 'config' | 'points' | 'slurm' | 'resolveLocal'> & { runId: string }): SlurmRun {
    const writer = base.store.open(base.runId);
    const { config, configText, points } = openStoredRun(writer.dir, writer.meta);
    if (!config || configText === undefined || config.target.kind !== 'slurm') {
      writer.close();
      throw new SlurmError(`run ${base.runId}: its stored config is not a valid Slurm config any more`);
    }
    return new SlurmRun({ ...base, configText, config, points, slurm: config.target.slurm, resolveLocal: (p) => p }, writer);
  }

  private async scancel(): Promise<void> {
    if (this.jobId) await this.options.transport.exec(`scancel ${shq(this.jobId)}`);
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    this.options.listener?.onPhase?.('cancelling');
    await this.scancel();
  }

  detach(): void {
    this.detached = true;
    for (const f of this.followers) f.detach();
  }
}
