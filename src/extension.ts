import * as vscode from 'vscode';
import { loadCalibration, registerCommands } from './vscode/commands';
import { ConfigCache } from './vscode/configFiles';
import { ConfigDiagnostics } from './vscode/diagnostics';
import { EstimateService, registerEstimateProviders } from './vscode/estimates';
import { HostsTree } from './vscode/hosts';
import { DisposableBag } from './vscode/disposable';
import { LivePanel, ResultPanel } from './vscode/panels';
import { RunManager } from './vscode/runManager';
import { RunsTree } from './vscode/runsTree';
import { RunStatusBar } from './vscode/statusBar';
import { readSummary } from './core/store/store';

export function activate(context: vscode.ExtensionContext): void {
  const bag = new DisposableBag();
  context.subscriptions.push(bag);
  const log = bag.add(vscode.window.createOutputChannel('Wattbench', { log: true }));
  const configs = new ConfigCache();
  const estimates = bag.add(new EstimateService(configs));
  const warnCalibration = (message: string) => {
    log.warn(message);
    void vscode.window.showWarningMessage(`Wattbench: ${message}`);
  };
  estimates.setProfile(loadCalibration(warnCalibration));
  bag.add(new ConfigDiagnostics(configs, () => estimates.documentChanged()));
  const manager = bag.add(new RunManager(context.extensionUri, log, estimates, context.secrets));
  const hostsTree = new HostsTree();
  const runsTree = new RunsTree(manager);
  registerEstimateProviders(bag, estimates, (uri) => lastResult(manager, uri), manager.onDidChangeRuns);
  bag.add(vscode.window.createTreeView('wattbench.runs', { treeDataProvider: runsTree, canSelectMany: true, showCollapseAll: true }));
  bag.add(vscode.window.createTreeView('wattbench.hosts', { treeDataProvider: hostsTree }));
  bag.add(new RunStatusBar(manager));
  for (const d of registerCommands({ extensionUri: context.extensionUri, manager, estimates, hostsTree, log, secrets: context.secrets })) bag.add(d);
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
