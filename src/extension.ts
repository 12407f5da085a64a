import * as vscode from 'vscode';
import { loadCalibration, registerCommands } from './vscode/commands';
import { ConfigCache } from './vscode/config-files';
import { ConfigDiagnostics } from './vscode/diagnostics';
import { EstimateService, registerEstimateProviders } from './vscode/estimates';
import { HostsTree } from './vscode/hosts';
import { ModelShapes } from './vscode/models';
import { DisposableBag } from './vscode/disposable';
import { LivePanel, ResultPanel } from './vscode/panels';
import { RunManager } from './vscode/run-manager';
import { RunsTree } from './vscode/runs-tree';
import { RunStatusBar } from './vscode/status-bar';
import { StartedHere } from './core/run/started-here';
import { readSummary } from './core/store/store';

export function activate(context: vscode.ExtensionContext): void {
  const bag = new DisposableBag();
  context.subscriptions.push(bag);
  const log = bag.add(vscode.window.createOutputChannel('Wattbench', { log: true }));
  try {
    wire(context, bag, log);
  } catch (error) {
    // A start-up that fails says so where the user looks, instead of leaving commands that do nothing.
    const message = error instanceof Error ? error.message : String(error);
    log.error(`Wattbench failed to start: ${error instanceof Error && error.stack ? error.stack : message}`);
    void vscode.window.showErrorMessage(`Wattbench failed to start: ${message}`, 'Show Log').then((choice) => choice && log.show());
    throw error;
  }
}

function wire(context: vscode.ExtensionContext, bag: DisposableBag, log: vscode.LogOutputChannel): void {
  const configs = new ConfigCache();
  const shapes = new ModelShapes(context.globalStorageUri.fsPath, context.secrets);
  const estimates = bag.add(new EstimateService(configs, (spec, baseDir) => shapes.resolve(spec, baseDir), shapes));
  const warnCalibration = (message: string) => {
    log.warn(message);
    void vscode.window.showWarningMessage(`Wattbench: ${message}`);
  };
  estimates.setProfile(loadCalibration(warnCalibration));
  bag.add(new ConfigDiagnostics(configs, () => estimates.documentChanged()));
  const startedHere = new StartedHere(vscode.Uri.joinPath(context.globalStorageUri, 'runs-started-here.json').fsPath);
  const manager = bag.add(new RunManager(context.extensionUri, log, estimates, context.secrets, startedHere));
  const hostsTree = new HostsTree();
  const runsTree = new RunsTree(manager);
  registerEstimateProviders(bag, estimates, (uri) => lastResult(manager, uri), manager.onDidChangeRuns);
  bag.add(vscode.window.createTreeView('wattbench.runs', { treeDataProvider: runsTree, canSelectMany: true, showCollapseAll: true }));
  bag.add(vscode.window.createTreeView('wattbench.hosts', { treeDataProvider: hostsTree }));
  bag.add(new RunStatusBar(manager));
  for (const d of registerCommands({ extensionUri: context.extensionUri, manager, estimates, hostsTree, log, secrets: context.secrets, shapes })) bag.add(d);
  bag.add(
    vscode.window.registerWebviewPanelSerializer(LivePanel.viewType, {
      deserializeWebviewPanel: async (panel, state: { runId?: string } | undefined) => {
        if (state?.runId) LivePanel.revive(panel, state.runId, manager, context.extensionUri);
        else panel.dispose();
      },
    }),
  );
  bag.add(
    vscode.window.registerWebviewPanelSerializer(ResultPanel.viewType, {
      deserializeWebviewPanel: async (panel, state: { runIds?: string[] } | undefined) => {
        if (state?.runIds?.length && manager.store) ResultPanel.revive(panel, state.runIds, manager.store, context.extensionUri);
        else panel.dispose();
      },
    }),
  );
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (folder) {
    const watcher = bag.add(vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '.wattbench/calibration.json')));
    const reload = () => estimates.setProfile(loadCalibration(warnCalibration));
    bag.add(watcher.onDidChange(reload));
    bag.add(watcher.onDidCreate(reload));
    bag.add(watcher.onDidDelete(reload));
  }
  bag.add(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('wattbench.hosts')) hostsTree.refresh();
      if (e.affectsConfiguration('wattbench.cost')) estimates.settingsChanged();
      if (e.affectsConfiguration('wattbench.huggingFace')) estimates.shapesChanged();
    }),
  );
  bag.add(vscode.workspace.onDidGrantWorkspaceTrust(() => void manager.reattachAll()));
  void manager.reattachAll();
  log.info('Wattbench activated');
}

function lastResult(manager: RunManager, uri: vscode.Uri): { label: string; runId: string } | undefined {
  const file = vscode.workspace.asRelativePath(uri, false);
  const record = manager.store?.list().find((r) => r.meta.config_file === file && r.meta.status === 'ok');
  if (!record) return undefined;
  const summary = readSummary(record.dir);
  const j = summary?.total.j_per_output_token;
  return { runId: record.id, label: j !== undefined && Number.isFinite(j) ? `${Number(j.toPrecision(3))} J/token measured` : record.meta.status };
}

export function deactivate(): void {}
