import { dirname, relative, resolve } from 'node:path';
import * as vscode from 'vscode';
import { hasErrors } from '../core/config';
import { findAgentSource } from '../core/run/agent-path';
import type { AgentEvent } from '../core/protocol/events';
import type { RunListener, RunOutcome } from '../core/run/follower';
import { describeTarget, followAgain, startRun, type FollowedAgain, type RunHandle } from '../core/run/start';
import { StartedHere } from '../core/run/started-here';
import { markOrphaned, runsToReattach } from '../core/run/stored';
import { readEventsSync, RunStore, type RunMeta } from '../core/store/store';
import { openTransport } from '../core/transport/open';
import type { Transport } from '../core/transport/types';
import { LiveTracker, trackerFromEvents } from '../core/view/live';
import type { RunSummary } from '../core/protocol/summary';
import type { PointInfo } from '../core/protocol/webview';
import { DisposableBag } from './disposable';
import type { EstimateService } from './estimates';
import { sshPrompts } from './hosts';
import { readRunHostCache } from '../core/models/host-cache';
import { gpusOfHello } from '../core/models/host-gpus';

export interface ActiveRun {
  id: string;
  configName: string;
  target: string;
  tracker: LiveTracker;
  /** Lives as long as this run: its transport, listeners and timers. */
  bag: DisposableBag;
  cancel(): Promise<void>;
  detach(): void;
  done: Promise<RunOutcome>;
  /** The summary so far, for predicted-against-measured while the run goes. */
  summarize(): RunSummary;
  watts: number;
  pointsDone: number;
  pointsTotal: number;
}

/** Starts, follows, cancels and reattaches runs for the extension. One per window. */
export class RunManager implements vscode.Disposable {
  private readonly active = new Map<string, ActiveRun>();
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly updated = new vscode.EventEmitter<string>();
  /** Runs started, finished, cancelled or deleted: trees and lenses refresh. */
  readonly onDidChangeRuns = this.changed.event;
  /** New live data for a run (throttled by listeners). */
  readonly onDidUpdateRun = this.updated.event;
  /** "runId host" of each run's host whose hf-configs.json was recorded already. */
  private readonly hostsRecorded = new Set<string>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
    private readonly estimates: EstimateService,
    private readonly secrets: vscode.SecretStorage,
    /** Runs this machine started (in the extension's global storage): the only ones followed again on their own. */
    private readonly startedHere: StartedHere,
  ) {}

  get store(): RunStore | undefined {
    const folder = vscode.workspace.workspaceFolders?.[0];
    return folder ? RunStore.forWorkspace(folder.uri.fsPath) : undefined;
  }

  get(runId: string): ActiveRun | undefined {
    return this.active.get(runId);
  }

  list(): ActiveRun[] {
    return [...this.active.values()];
  }

  notifyChanged(): void {
    this.changed.fire();
  }

  private transportFor(host: string): Transport {
    return openTransport(host, { logger: this.log, ...sshPrompts(this.secrets) });
  }

  /** Runs a config file (optionally only some points) on a host; refuses in an untrusted workspace. */
  async start(uri: vscode.Uri, host?: string, pointIds?: string[]): Promise<ActiveRun | undefined> {
    if (!vscode.workspace.isTrusted) {
      const choice = await vscode.window.showErrorMessage(
        'Wattbench does not run benchmarks in an untrusted workspace: running a config executes commands on your GPU hosts. Trust this workspace to run it.',
        'Manage Workspace Trust',
      );
      if (choice) void vscode.commands.executeCommand('workbench.trust.manage');
      return undefined;
    }
    const store = this.store;
    if (!store) {
      void vscode.window.showErrorMessage('Wattbench: open a folder first; runs are stored in the workspace.');
      return undefined;
    }
    const document = await vscode.workspace.openTextDocument(uri);
    const text = document.getText();
    // The editor's parse and estimate of this version of the file: the same ones its CodeLens shows.
    const { loaded, estimate } = this.estimates.get(document);
    if (hasErrors(loaded.diagnostics) || !loaded.config || !estimate) {
      const first = loaded.diagnostics.find((d) => d.severity === 'error')!;
      const choice = await vscode.window.showErrorMessage(`Wattbench: ${vscode.workspace.asRelativePath(uri)}:${first.range.start.line + 1}: ${first.message}`, 'Open the config');
      if (choice) {
        const editor = await vscode.window.showTextDocument(document);
        const at = new vscode.Position(first.range.start.line, first.range.start.col);
        editor.selection = new vscode.Selection(at, at);
        editor.revealRange(new vscode.Range(at, at));
      }
      return undefined;
    }
    const config = loaded.config;
    const target = describeTarget(config, host);
    const points = pointIds ? loaded.points.filter((p) => pointIds.includes(p.id)) : loaded.points;
    const predictions: RunMeta['predictions'] = {};
    for (const e of estimate.points)
      if (e.prediction && points.some((p) => p.id === e.point))
        predictions[e.point] = {
          runtime_s: e.prediction.runtime_s,
          j_per_output_token: e.prediction.j_per_output_token,
          avg_power_w: e.prediction.avg_power_w * (points.find((p) => p.id === e.point)?.gpuCount ?? 1),
          energy_j: e.prediction.energy_j,
          output_tokens_per_s: e.prediction.output_tokens_per_s,
          basis: e.prediction.basis,
        };
    const bag = new DisposableBag();
    const workspace = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const pointInfos: PointInfo[] = points.map((p) => {
      const pred = predictions[p.id];
      return { id: p.id, label: p.label, status: 'pending', predicted: pred && { avg_power_w_total: pred.avg_power_w, output_tokens_per_s: pred.output_tokens_per_s, j_per_output_token: pred.j_per_output_token, runtime_s: pred.runtime_s } };
    });
    // Assigned once the run exists; the listener reads it before then (events wait in `early`).
    // eslint-disable-next-line prefer-const
    let active: ActiveRun | undefined;
    const early: AgentEvent[] = [];
    const listener = this.listenerFor(() => active, early);
    const run = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Wattbench: starting ${config.name} on ${target}`, cancellable: true },
      async (progress, token) => {
        const started = startRun({
          store,
          host,
          transportFor: (h) => this.transportFor(h),
          agentSource: this.agentSource,
          configText: text,
          config,
          points,
          configFile: relative(workspace, uri.fsPath),
          resolveLocal: (p) => resolve(dirname(uri.fsPath), p),
          logger: this.log,
          predictions,
          listener: {
            ...listener,
            onPhase: (phase, detail) => {
              progress.report({ message: `${phase}${detail ? ` ${detail}` : ''}` });
              listener.onPhase?.(phase, detail);
            },
          },
        });
        this.startedHere.add(started.writer.dir);
        token.onCancellationRequested(() => void started.cancel());
        // The notification stays until the agent is running (or the start failed).
        await Promise.race([started.done.catch(() => undefined), new Promise<void>((resolve) => {
          const check = setInterval(() => {
            if (started.writer.meta.remotes.length) {
              clearInterval(check);
              resolve();
            }
          }, 100);
          bag.add({ dispose: () => clearInterval(check) });
        })]);
        return started;
      },
    );
    active = this.adopt(run, { configName: config.name, target, tracker: new LiveTracker({ runId: run.id, title: `${config.name} on ${target}`, target, points: pointInfos }), pointsTotal: points.length }, bag, early, uri);
    return active;
  }

  private get agentSource(): string {
    return findAgentSource(vscode.Uri.joinPath(this.extensionUri, 'dist').fsPath);
  }

  /** Makes a started or reattached run one of this window's active runs, and follows it to its end. */
  private adopt(
    run: Pick<RunHandle, 'id' | 'done' | 'cancel' | 'detach' | 'summarizer'>,
    info: { configName: string; target: string; tracker: LiveTracker; pointsTotal: number },
    bag: DisposableBag,
    early: AgentEvent[],
    uri?: vscode.Uri,
  ): ActiveRun {
    const active: ActiveRun = {
      id: run.id,
      ...info,
      bag,
      cancel: () => run.cancel(),
      detach: () => run.detach(),
      done: run.done,
      summarize: () => run.summarizer.result(),
      watts: 0,
      pointsDone: info.tracker.state.points.filter((p) => p.status !== 'pending' && p.status !== 'running').length,
    };
    for (const e of early.splice(0)) this.onEvent(active, e);
    this.track(active, uri);
    return active;
  }

  /** Events that arrive before the run's record exists (while the start notification shows) wait in `early`. */
  private listenerFor(current: () => ActiveRun | undefined, early: AgentEvent[]): RunListener {
    return {
      onEvent: (event) => {
        const active = current();
        if (!active) {
          early.push(event);
          return;
        }
        this.onEvent(active, event);
      },
      onPhase: (phase, detail) => {
        const active = current();
        if (!active) return;
        if (phase === 'reconnecting') active.tracker.setStatus('reconnecting', detail);
        else if (phase === 'running' && active.tracker.state.status === 'reconnecting') active.tracker.setStatus('running', '');
        this.updated.fire(active.id);
      },
      onProblem: (message) => this.log.warn(message),
    };
  }

  private onEvent(active: ActiveRun, event: AgentEvent): void {
    active.tracker.add(event);
    if (event.type === 'hello') void this.recordHosts(active.id, event);
    if (event.type === 'sample') active.watts = event.gpus.reduce((s, g) => s + g.p_w, 0);
    if (event.type === 'point' && event.state === 'end') {
      active.pointsDone++;
      active.tracker.setSummary(active.summarize());
    }
    if (event.type === 'sample' && event.seq % 20 === 0) active.tracker.setSummary(active.summarize());
    if (event.type === 'error') this.log.error(`${active.id} (${event.where}): ${event.message}${event.detail ? `\n${event.detail}` : ''}`);
    this.updated.fire(active.id);
  }

  /**
   * Once a run's agent said hello (the launch succeeded, and its hf-configs.json is written: the agent writes it
   * first), records what its host has: the models in its Hugging Face cache, and its GPUs (of a single-host run: a
   * hello of several hosts does not say which alias it came from). Then estimates that wait on them refresh.
   */
  private async recordHosts(runId: string, hello: AgentEvent & { type: 'hello' }): Promise<void> {
    const hosts = this.estimates.hosts;
    const remotes = hosts && this.store?.get(runId)?.meta.remotes;
    if (!hosts || !remotes?.length) return;
    let changed = false;
    const gpus = remotes.length === 1 ? gpusOfHello(hello) : undefined;
    if (gpus) {
      try {
        hosts.hostGpus.record(remotes[0].host, gpus);
        changed = true;
      } catch (error) {
        this.log.warn(`${remotes[0].host}: could not record its GPUs: ${(error as Error).message}`);
      }
    }
    for (const remote of remotes) {
      const key = `${runId} ${remote.host}`;
      if (this.hostsRecorded.has(key)) continue;
      this.hostsRecorded.add(key);
      const transport = this.transportFor(remote.host);
      try {
        const report = await readRunHostCache(transport, remote.runDir);
        if (report) {
          hosts.hostCaches.record(remote.host, report);
          changed = true;
        } else this.hostsRecorded.delete(key); // not written yet (another host's hello came first): the next hello asks again
      } catch (error) {
        this.log.warn(`${remote.host}: could not record its Hugging Face cache from ${remote.runDir}/hf-configs.json: ${(error as Error).message}`);
      } finally {
        transport.close();
      }
    }
    if (changed) this.estimates.shapesChanged();
  }

  private track(active: ActiveRun, uri?: vscode.Uri): void {
    this.active.set(active.id, active);
    this.changed.fire();
    const forget = () => {
      const store = this.store;
      if (store) this.startedHere.remove(store.dirOf(active.id));
    };
    active.done.then(
      (outcome) => {
        // A detached run is still ours to follow when the next window opens; an ended one is not.
        if (outcome.status !== 'detached') forget();
        active.tracker.setSummary(outcome.summary);
        active.tracker.setStatus(outcome.status === 'ok' ? 'ok' : outcome.status === 'detached' ? 'detached' : outcome.status === 'cancelled' ? 'cancelled' : 'error');
        this.finish(active);
        if (outcome.status === 'ok') {
          const t = outcome.summary.total;
          void vscode.window
            .showInformationMessage(`Wattbench: ${active.configName} finished on ${active.target}: ${t.j_per_output_token.toPrecision(3)} J/token over ${t.output_tokens} tokens.`, 'Open Result')
            .then((choice) => choice && vscode.commands.executeCommand('wattbench.openResult', active.id));
        } else if (outcome.status === 'error') {
          const message = this.store?.get(active.id)?.meta.error ?? outcome.summary.errors[0]?.message ?? 'see the log';
          void this.showRunError(active, message, uri);
        }
      },
      (error: Error) => {
        forget();
        active.tracker.setStatus('error', error.message);
        this.finish(active);
        void this.showRunError(active, error.message, uri);
      },
    );
  }

  private async showRunError(active: ActiveRun, message: string, uri?: vscode.Uri): Promise<void> {
    const actions = ['Show Log', ...(uri ? ['Retry', 'Open Config'] : [])];
    const choice = await vscode.window.showErrorMessage(`Wattbench: ${active.configName} on ${active.target} failed: ${message}`, ...actions);
    if (choice === 'Show Log') this.log.show();
    if (choice === 'Retry' && uri) void this.start(uri, active.target);
    if (choice === 'Open Config' && uri) void vscode.window.showTextDocument(uri);
  }

  private finish(active: ActiveRun): void {
    this.updated.fire(active.id);
    // Keep the tracker around for the live view until the window closes; the run's resources go now.
    active.bag.dispose();
    this.changed.fire();
  }

  /** On start-up: follow again every run the store says was still going. */
  async reattachAll(): Promise<void> {
    const store = this.store;
    if (!store || !vscode.workspace.isTrusted) return;
    const { followable, orphaned, foreign } = runsToReattach(store, (dir) => this.startedHere.has(dir));
    for (const meta of foreign)
      this.log.info(`not following ${meta.run_id} (${meta.target}): its record says running, but it was not started from this machine`);
    for (const meta of orphaned) {
      if (this.active.has(meta.run_id)) continue;
      markOrphaned(store, meta);
      void vscode.window.showWarningMessage(`Wattbench: lost track of ${meta.config_name} (${meta.target}) when the window restarted; what was received is kept, and the job may still be running there.`);
    }
    if (orphaned.length) this.changed.fire();
    const workspace = vscode.workspace.workspaceFolders![0].uri.fsPath;
    for (const { meta, kind } of followable) {
      if (this.active.has(meta.run_id)) continue;
      this.log.info(`following ${meta.run_id} (${kind}) on ${meta.target} again`);
      let active: ActiveRun | undefined;
      const early: AgentEvent[] = [];
      const configDir = resolve(workspace, dirname(meta.config_file ?? '.'));
      try {
        const tracker = trackerFromEvents(meta, readEventsSync(store.dirOf(meta.run_id)));
        const followed = await followAgain(meta, kind, {
          store,
          agentSource: this.agentSource,
          transportFor: (h) => this.transportFor(h),
          resolveLocal: (p) => resolve(configDir, p),
          logger: this.log,
          listener: this.listenerFor(() => active, early),
          confirmQueued: async (m, n) =>
            (await vscode.window.showInformationMessage(
              `Wattbench: ${m.config_name} on ${m.target} was interrupted when the window closed; its points in flight are followed again. Start the ${n} point(s) it had not started yet?`,
              'Resume',
              'Not now',
            )) === 'Resume',
        });
        active = this.adopt(followed.run, { configName: meta.config_name, target: kind === 'single' ? followed.where : meta.target, tracker, pointsTotal: meta.points.length }, new DisposableBag(), early);
        void vscode.window.showInformationMessage(followedMessage(meta, followed));
      } catch (error) {
        const message = (error as Error).message;
        this.log.warn(`could not follow ${meta.run_id} on ${meta.target} again: ${message}`);
        if (kind === 'multihost') {
          markOrphaned(store, meta, message);
          this.changed.fire();
          void vscode.window.showWarningMessage(`Wattbench: could not resume ${meta.config_name} (${meta.target}): ${message}. What was received is kept.`);
        }
      }
    }
  }

  async cancel(runId: string): Promise<void> {
    const active = this.active.get(runId);
    if (!active) return;
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Wattbench: cancelling ${active.configName} and restoring the host` }, async () => {
      await active.cancel();
      await active.done.catch(() => undefined);
    });
  }

  isRunning(runId: string): boolean {
    const active = this.active.get(runId);
    return !!active && ['running', 'reconnecting'].includes(active.tracker.state.status);
  }

  dispose(): void {
    // Runs go on on their hosts; the next start reattaches them.
    for (const active of this.active.values()) {
      if (this.isRunning(active.id)) active.detach();
      active.bag.dispose();
    }
    this.changed.dispose();
    this.updated.dispose();
  }
}

function followedMessage(meta: RunMeta, followed: FollowedAgain): string {
  if (followed.kind === 'slurm') return `Wattbench: following ${followed.where} (${meta.config_name}) again.`;
  if (followed.kind === 'multihost') return `Wattbench: resumed ${meta.config_name} on ${followed.where}; points measured before the restart are kept.`;
  return `Wattbench: reattached to ${meta.config_name} on ${followed.where}; nothing measured while away was lost.`;
}
