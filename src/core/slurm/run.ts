/**
 * A run on a Slurm cluster through its login node: write the batch script (kept with the run), submit
 * it, follow the job, read every node's events from the shared filesystem, cancel with scancel.
 * Slurm is the scheduler; Wattbench only asks it.
 */
import { readFileSync } from 'node:fs';
import type { SlurmTargetSpec } from '../config/model';
import { buildJob } from '../run/job';
import { installAgent, uploadRunFiles, fetchText, type InstalledAgent } from '../run/remote';
import { AgentFollower, createRunRecord, type RunOutcome, type RunSpec } from '../run/session';
import { Summarizer } from '../run/summarize';
import type { RemoteHandle, RunStatus, RunWriter } from '../store/store';
import { shq } from '../transport/shell';
import type { Transport } from '../transport/types';
import { silentLogger, type Logger } from '../util/logger';
import { parseScontrolJob, sbatchScript, secondsBetween, TERMINAL_STATES, type SlurmJobInfo } from './sbatch';

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
  private info?: SlurmJobInfo;
  private readonly followers: AgentFollower[] = [];
  private readonly log: Logger;

  constructor(private readonly options: SlurmRunOptions) {
    this.log = options.logger ?? silentLogger;
    ({ writer: this.writer, summarizer: this.summarizer } = createRunRecord(options, `slurm:${options.slurm.login}`));
    this.id = this.writer.id;
    this.done = this.execute().catch((error: Error) => {
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
    const { job, files } = buildJob(this.id, config, this.options.points, this.options.resolveLocal);
    const gpusPerNode = slurm.gpusPerNode ?? Math.ceil(config.gpus.count / slurm.nodes);
    const script = sbatchScript({ runId: this.id, runDir, agentPath: agent.path, slurm, gpusPerNode });
    this.writer.attach('sbatch.sh', script);
    this.writer.attach('job.json', JSON.stringify(job, null, 2));
    const uploads = new Map<string, Buffer | string>([['job.json', JSON.stringify(job, null, 2)], ['sbatch.sh', script]]);
    for (const [name, local] of files) uploads.set(name, readFileSync(local));
    await uploadRunFiles(agent, runDir, uploads);
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
      const handle: RemoteHandle = { host: slurm.login, runDir: `${runDir}/node-${i}`, offset: 0, nextSeq: 0, node: `node-${i}` };
      this.writer.updateMeta((m) => m.remotes.push(handle));
      this.followers.push(new AgentFollower(agent, this.writer, handle, this.summarizer, listener, this.options));
    }
    let finished = TERMINAL_STATES.has(info.state);
    const watcher = (async () => {
      while (!finished) {
        await sleep(this.options.pollMs ?? 1000);
        info = await this.poll().catch(() => info);
        finished = TERMINAL_STATES.has(info.state);
      }
    })();
    const followed = await Promise.all(this.followers.map((f) => f.followByPolling(async () => finished, 500)));
    await watcher;
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
          nodes: parsed.nodeList ? [parsed.nodeList] : undefined,
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

  private async scancel(): Promise<void> {
    if (this.jobId) await this.options.transport.exec(`scancel ${shq(this.jobId)}`);
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    this.options.listener?.onPhase?.('cancelling');
    await this.scancel();
  }

  detach(): void {
    for (const f of this.followers) f.detach();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
