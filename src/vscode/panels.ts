import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as vscode from 'vscode';
import { summaryCsv } from '../core/store/csv';
import { readEventsSync, readMeta, readSummary, type RunStore } from '../core/store/store';
import { loadRunReport } from '../core/workspace/reports';
import { summaryNotes } from '../core/run/summary-notes';
import { trackerFromEvents, type LiveTracker } from '../core/view/live';
import { parseViewMessage, type HostToLive, type HostToResult, type ResultRun, type ViewToHost } from '../core/protocol/webview';
import { DisposableBag } from './disposable';
import type { RunManager } from './run-manager';

function html(webview: vscode.Webview, extensionUri: vscode.Uri, view: 'live' | 'result', title: string): string {
  const nonce = randomBytes(16).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview.js'));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${webview.cspSource} data:; style-src ${webview.cspSource} 'unsafe-inline'; font-src ${webview.cspSource}; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${title.replace(/[<>&"]/g, '')}</title>
</head>
<body data-view="${view}">
<div id="app"></div>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

function panelOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist')] };
}

/** Handles what both panels can be asked: export, PNG save, open a result. */
async function handleCommon(message: ViewToHost, store: RunStore | undefined): Promise<void> {
  if (message.type === 'openResult') await vscode.commands.executeCommand('wattbench.openResult', message.runId);
  if (message.type === 'exportCsv') await vscode.commands.executeCommand('wattbench.exportCsv', message.runId);
  if (message.type === 'savePng' && store) {
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(`${store.root}/${message.name}.png`), filters: { PNG: ['png'] } });
    if (target) writeFileSync(target.fsPath, Buffer.from(message.dataUrl.split(',')[1], 'base64'));
  }
}

/** One live view per run: power, throughput, latency and progress as the run goes. */
export class LivePanel {
  static readonly viewType = 'wattbench.live';
  private static readonly panels = new Map<string, LivePanel>();
  private readonly bag = new DisposableBag();
  private ready = false;
  private pending?: NodeJS.Timeout;
  /** For a run not (or no longer) followed in this window: rebuilt from the stored events. */
  private standalone?: LiveTracker;

  static show(runId: string, manager: RunManager, extensionUri: vscode.Uri): LivePanel {
    const existing = LivePanel.panels.get(runId);
    if (existing) {
      existing.panel.reveal(undefined, true);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(LivePanel.viewType, `Live: ${runId}`, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, panelOptions(extensionUri));
    return new LivePanel(panel, runId, manager, extensionUri);
  }

  static revive(panel: vscode.WebviewPanel, runId: string, manager: RunManager, extensionUri: vscode.Uri): LivePanel {
    panel.webview.options = panelOptions(extensionUri);
    return new LivePanel(panel, runId, manager, extensionUri);
  }

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly runId: string,
    private readonly manager: RunManager,
    extensionUri: vscode.Uri,
  ) {
    LivePanel.panels.set(runId, this);
    const active = manager.get(runId);
    panel.title = `Live: ${active?.configName ?? runId}`;
    panel.webview.html = html(panel.webview, extensionUri, 'live', panel.title);
    this.bag.add(panel.onDidDispose(() => this.dispose()));
    this.bag.add(
      panel.webview.onDidReceiveMessage(async (raw: unknown) => {
        const message = parseViewMessage(raw);
        if (!message) return;
        if (message.type === 'ready') {
          this.ready = true;
          await this.sendSnapshot();
        } else if (message.type === 'cancel') await manager.cancel(runId);
        else await handleCommon(message, manager.store);
      }),
    );
    // A hidden webview receives nothing: when it shows again, it starts from a full snapshot.
    this.bag.add(panel.onDidChangeViewState(() => panel.visible && this.ready && void this.sendSnapshot()));
    this.bag.add(manager.onDidUpdateRun((id) => id === runId && this.schedule()));
    this.bag.add({ dispose: () => clearTimeout(this.pending) });
  }

  private tracker(): LiveTracker | undefined {
    return this.manager.get(this.runId)?.tracker ?? this.standalone;
  }

  private async sendSnapshot(): Promise<void> {
    let tracker = this.tracker();
    if (!tracker) tracker = this.standalone = trackerFromStore(this.manager.store, this.runId);
    if (tracker) void this.panel.webview.postMessage(tracker.snapshot() satisfies HostToLive);
  }

  /** Deltas at most four times a second: smooth enough to watch, cheap enough for hours. */
  private schedule(): void {
    if (this.pending || !this.ready) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      const tracker = this.tracker();
      if (tracker && this.panel.visible) void this.panel.webview.postMessage(tracker.delta() satisfies HostToLive);
    }, 250);
  }

  dispose(): void {
    LivePanel.panels.delete(this.runId);
    this.bag.dispose();
  }
}

function trackerFromStore(store: RunStore | undefined, runId: string): LiveTracker | undefined {
  if (!store?.get(runId)) return undefined;
  const meta = readMeta(store.dirOf(runId));
  const tracker = trackerFromEvents(meta, readEventsSync(store.dirOf(runId)));
  const summary = readSummary(store.dirOf(runId));
  if (summary) tracker.setSummary(summary);
  tracker.setStatus(meta.status === 'running' ? 'detached' : meta.status === 'lost' ? 'error' : meta.status, meta.error);
  return tracker;
}

/** A stored run for the result viewer: its summary re-computed from events, and a power timeline. */
export async function loadResultRun(store: RunStore, runId: string): Promise<ResultRun> {
  const { run, summary, denoised, power } = await loadRunReport(store.dirOf(runId));
  const meta = run.meta;
  return {
    runId,
    title: meta.config_name,
    target: meta.target,
    status: meta.status,
    started: meta.started,
    simulated: meta.simulated ?? summary.simulated,
    summary,
    labels: Object.fromEntries(meta.points.map((p) => [p.id, p.label])),
    predictions: meta.predictions ?? {},
    power,
    notes: [...meta.notes, ...summaryNotes(summary)],
    error: meta.error,
    slurm: meta.slurm,
    denoised,
  };
}

/** The result viewer: one run, or several overlaid for comparison. */
export class ResultPanel {
  static readonly viewType = 'wattbench.result';
  private readonly bag = new DisposableBag();

  static async show(runIds: string[], store: RunStore, extensionUri: vscode.Uri, calibrationError?: number | null): Promise<ResultPanel> {
    const panel = vscode.window.createWebviewPanel(ResultPanel.viewType, runIds.length === 1 ? `Result: ${runIds[0]}` : `Compare ${runIds.length} runs`, vscode.ViewColumn.Active, panelOptions(extensionUri));
    return new ResultPanel(panel, runIds, store, extensionUri, calibrationError);
  }

  static revive(panel: vscode.WebviewPanel, runIds: string[], store: RunStore, extensionUri: vscode.Uri): ResultPanel {
    panel.webview.options = panelOptions(extensionUri);
    return new ResultPanel(panel, runIds, store, extensionUri);
  }

  private constructor(
    readonly panel: vscode.WebviewPanel,
    runIds: string[],
    store: RunStore,
    extensionUri: vscode.Uri,
    calibrationError?: number | null,
  ) {
    panel.webview.html = html(panel.webview, extensionUri, 'result', panel.title);
    this.bag.add(panel.onDidDispose(() => this.bag.dispose()));
    const send = async () => {
      const runs = await Promise.all(runIds.filter((id) => store.get(id)).map((id) => loadResultRun(store, id)));
      void panel.webview.postMessage({ type: 'result', runs, calibrationError } satisfies HostToResult);
    };
    this.bag.add(
      panel.webview.onDidReceiveMessage(async (raw: unknown) => {
        const message = parseViewMessage(raw);
        if (!message) return;
        if (message.type === 'ready') await send();
        else await handleCommon(message, store);
      }),
    );
    this.bag.add(panel.onDidChangeViewState(() => panel.visible && void send()));
  }
}

export async function exportCsv(store: RunStore, runId: string): Promise<vscode.Uri | undefined> {
  const run = await loadResultRun(store, runId);
  const meta = readMeta(store.dirOf(runId));
  const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(`${store.dirOf(runId)}/${runId}.csv`), filters: { CSV: ['csv'] } });
  if (!target) return undefined;
  writeFileSync(target.fsPath, summaryCsv(run.summary, meta));
  return target;
}
