import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import { calibrateDetailed } from '../core/estimate/calibrate';
import { importFiles } from '../core/import';
import { measurementsFromRuns } from '../core/workspace/calibration';
import { type CalibrationProfile, parseCalibrationProfile } from '../core/estimate/profile';
import { estimateMarkdown } from './estimates';
import type { EstimateService } from './estimates';
import { configuredHosts, HostItem, type HostsTree, testHostConnection } from './hosts';
import { type ModelShapes, setHuggingFaceToken } from './models';
import { newConfigCommand } from './new-config';
import { exportCsv, LivePanel, ResultPanel } from './panels';
import type { RunManager } from './run-manager';
import { RunNode } from './runs-tree';
import { registerPreviewDocuments, showPreviewDocument } from './preview-documents';
import { recommendCommand } from './recommend';
import { SECTION } from './settings';
import { isConfigDocument } from './config-files';

export interface CommandContext {
  extensionUri: vscode.Uri;
  manager: RunManager;
  estimates: EstimateService;
  hostsTree: HostsTree;
  log: vscode.LogOutputChannel;
  secrets: vscode.SecretStorage;
  /** Where model shapes are found; Test Host Connection records the host's Hugging Face cache in it. */
  shapes?: ModelShapes;
}

export function calibrationPath(): string | undefined {
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder ? join(folder.uri.fsPath, '.wattbench', 'calibration.json') : undefined;
}

/**
 * The workspace's calibration, or undefined (the prior) when there is none or it cannot be read;
 * a broken file is reported through `warn` so the user knows why the CodeLens says "prior".
 */
export function loadCalibration(warn: (message: string) => void): CalibrationProfile | undefined {
  const path = calibrationPath();
  if (!path || !existsSync(path)) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    warn(`cannot read ${vscode.workspace.asRelativePath(path)}: ${(e as Error).message}`);
    return undefined;
  }
  const parsed = parseCalibrationProfile(text);
  if ('error' in parsed) {
    warn(`${vscode.workspace.asRelativePath(path)} is ignored, predictions use the prior: ${parsed.error}. Run "Wattbench: Calibrate from Runs" to rewrite it.`);
    return undefined;
  }
  return parsed.profile;
}

async function pickConfig(): Promise<vscode.Uri | undefined> {
  const active = vscode.window.activeTextEditor?.document;
  if (active && isConfigDocument(active)) return active.uri;
  const files = await vscode.workspace.findFiles('**/*.wattbench.{yaml,yml,json}', '**/node_modules/**', 200);
  if (files.length === 1) return files[0];
  const pick = await vscode.window.showQuickPick(
    files.map((uri) => ({ label: vscode.workspace.asRelativePath(uri), uri })),
    { title: 'Run which benchmark config?', placeHolder: files.length ? undefined : 'No *.wattbench.yaml in this workspace: create one with "Wattbench: New Benchmark Config"' },
  );
  return pick?.uri;
}

async function pickHost(uri: vscode.Uri): Promise<string | undefined> {
  const text = (await vscode.workspace.openTextDocument(uri)).getText();
  const declared = /^target:\s*([^\s#[{]+)/m.exec(text)?.[1];
  const hosts = configuredHosts();
  const ordered = declared ? [declared, ...hosts.filter((h) => h !== declared)] : hosts;
  const pick = await vscode.window.showQuickPick(
    ordered.map((host) => ({ label: host, description: host === declared ? 'the config\'s target' : host === 'local' ? 'this machine' : 'ssh' })),
    { title: 'Run on which host?' },
  );
  return pick?.label;
}

async function pickRun(ctx: CommandContext, title: string, onlyActive: boolean): Promise<string | undefined> {
  const active = ctx.manager.list().filter((r) => ctx.manager.isRunning(r.id));
  const items = onlyActive
    ? active.map((r) => ({ label: r.configName, description: `${r.target} · ${r.id}`, id: r.id }))
    : (ctx.manager.store?.list() ?? []).map((r) => ({ label: r.meta.config_name, description: `${r.meta.target} · ${r.meta.status} · ${r.id}`, id: r.id }));
  if (items.length === 0) {
    void vscode.window.showInformationMessage(onlyActive ? 'Wattbench: no run is active.' : 'Wattbench: no runs in this workspace yet.');
    return undefined;
  }
  if (items.length === 1 && onlyActive) return items[0].id;
  return (await vscode.window.showQuickPick(items, { title }))?.id;
}

const runIdOf = (arg: unknown): string | undefined => (typeof arg === 'string' ? arg : arg instanceof RunNode ? arg.meta.run_id : undefined);

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  const { manager, extensionUri } = ctx;
  const command = (id: string, handler: (...args: never[]) => unknown) => vscode.commands.registerCommand(id, handler);
  return [
    registerPreviewDocuments(),
    command('wattbench.newConfig', newConfigCommand),
    command('wattbench.run', async (uri?: vscode.Uri) => {
      const fromPalette = !(uri instanceof vscode.Uri);
      const target = fromPalette ? await pickConfig() : uri;
      if (!target) return;
      const host = fromPalette ? await pickHost(target) : undefined;
      if (fromPalette && !host) return;
      const active = await manager.start(target, host);
      if (active) LivePanel.show(active.id, manager, extensionUri);
    }),
    command('wattbench.runPoint', async (uri?: vscode.Uri) => {
      const target = uri instanceof vscode.Uri ? uri : await pickConfig();
      if (!target) return;
      const { loaded } = ctx.estimates.get(await vscode.workspace.openTextDocument(target));
      const pick = await vscode.window.showQuickPick(loaded.points.map((p) => ({ label: p.label, description: p.id, id: p.id })), { title: 'Run which point?' });
      if (!pick) return;
      const active = await manager.start(target, undefined, [pick.id]);
      if (active) LivePanel.show(active.id, manager, extensionUri);
    }),
    command('wattbench.cancelRun', async (arg?: unknown) => {
      const id = runIdOf(arg) ?? (await pickRun(ctx, 'Cancel which run?', true));
      if (id) await manager.cancel(id);
    }),
    command('wattbench.estimate', async (uri?: vscode.Uri) => {
      const target = uri instanceof vscode.Uri ? uri : await pickConfig();
      if (!target) return;
      const document = await vscode.workspace.openTextDocument(target);
      const { loaded, estimate } = ctx.estimates.get(document);
      if (!estimate || !loaded.config) {
        void vscode.window.showErrorMessage('Wattbench: fix the config\'s errors first; the estimate needs a valid config.');
        return;
      }
      const md = estimateMarkdown(estimate, estimate.points, loaded.config.name);
      // Read-only, one per config: no unsaved editor left behind (src/vscode/preview-documents.ts).
      await showPreviewDocument('estimate', `Estimate ${loaded.config.name}`, md.value);
    }),
    command('wattbench.recommend', async (uri?: vscode.Uri) => {
      const target = uri instanceof vscode.Uri ? uri : await pickConfig();
      if (target) await recommendCommand(target, ctx.estimates, manager);
    }),
    command('wattbench.openLiveView', async (arg?: unknown) => {
      const id = runIdOf(arg) ?? (await pickRun(ctx, 'Open the live view of which run?', true)) ?? (await pickRun(ctx, 'Open the live view of which run?', false));
      if (id) LivePanel.show(id, manager, extensionUri);
    }),
    command('wattbench.openResult', async (arg?: unknown) => {
      const id = runIdOf(arg) ?? (await pickRun(ctx, 'Open which result?', false));
      if (id && manager.store) await ResultPanel.show([id], manager.store, extensionUri, calibrationLoo(ctx.estimates.calibration));
    }),
    command('wattbench.compareRuns', async (arg?: unknown, selected?: unknown[]) => {
      let ids = (selected ?? []).map(runIdOf).filter((x): x is string => !!x);
      if (ids.length < 2) {
        const picks = await vscode.window.showQuickPick(
          (manager.store?.list() ?? []).map((r) => ({ label: r.meta.config_name, description: `${r.meta.target} · ${r.meta.status} · ${r.id}`, id: r.id, picked: r.id === runIdOf(arg) })),
          { title: 'Compare which runs?', canPickMany: true },
        );
        ids = picks?.map((p) => p.id) ?? [];
      }
      if (ids.length && manager.store) await ResultPanel.show(ids, manager.store, extensionUri, calibrationLoo(ctx.estimates.calibration));
    }),
    command('wattbench.exportCsv', async (arg?: unknown) => {
      const id = runIdOf(arg) ?? (await pickRun(ctx, 'Export which run?', false));
      if (!id || !manager.store) return;
      const file = await exportCsv(manager.store, id);
      if (file) void vscode.window.showInformationMessage(`Wattbench: wrote ${vscode.workspace.asRelativePath(file)}`);
    }),
    command('wattbench.deleteRun', async (arg?: unknown) => {
      const id = runIdOf(arg);
      if (!id || !manager.store) return;
      if (manager.isRunning(id)) {
        void vscode.window.showWarningMessage('Wattbench: cancel the run before deleting it.');
        return;
      }
      const ok = await vscode.window.showWarningMessage(`Delete run ${id} and everything it measured?`, { modal: true }, 'Delete');
      if (ok !== 'Delete') return;
      manager.store.delete(id);
      manager.notifyChanged();
    }),
    command('wattbench.runAgain', async (arg?: unknown) => {
      const id = runIdOf(arg);
      const record = id ? manager.store?.get(id) : undefined;
      const folder = vscode.workspace.workspaceFolders?.[0];
      if (!record?.meta.config_file || !folder) return;
      const uri = vscode.Uri.joinPath(folder.uri, record.meta.config_file);
      const active = await manager.start(uri, record.meta.target);
      if (active) LivePanel.show(active.id, manager, extensionUri);
    }),
    command('wattbench.refreshRuns', () => manager.notifyChanged()),
    command('wattbench.importResults', async () => {
      const store = manager.store;
      if (!store) return void vscode.window.showErrorMessage('Wattbench: open a workspace folder to import results into.');
      const picked = await vscode.window.showOpenDialog({
        title: 'Import results of vLLM bench serve, GuideLLM, AIPerf, inference-perf or ML.ENERGY',
        canSelectMany: true,
        filters: { 'Benchmark results': ['json', 'jsonl', 'csv'] },
        openLabel: 'Import',
      });
      if (!picked?.length) return;
      let saved;
      try {
        saved = importFiles(store.root, picked.map((u) => u.fsPath));
      } catch (error) {
        return void vscode.window.showErrorMessage(`Wattbench: nothing imported. ${(error as Error).message}`);
      }
      manager.notifyChanged();
      const open = await vscode.window.showInformationMessage(`Wattbench: imported ${saved.map((s) => s.meta.config_name).join(', ')}.`, 'Open');
      if (open) await ResultPanel.show(saved.map((s) => s.id), store, extensionUri, calibrationLoo(ctx.estimates.calibration));
    }),
    command('wattbench.addHost', async () => {
      const host = await vscode.window.showInputBox({
        title: 'Add a GPU host',
        prompt: 'An alias from ~/.ssh/config, or user@host[:port]',
        validateInput: (v) => (/^[A-Za-z0-9_.@:[\]-]+$/.test(v.trim()) ? undefined : 'Only letters, digits and . _ - @ : [ ]'),
      });
      if (!host) return;
      const config = vscode.workspace.getConfiguration(SECTION);
      const hosts = config.get<string[]>('hosts') ?? [];
      if (!hosts.includes(host.trim())) await config.update('hosts', [...hosts, host.trim()], vscode.ConfigurationTarget.Global);
      ctx.hostsTree.refresh();
      void vscode.commands.executeCommand('wattbench.testHost', host.trim());
    }),
    command('wattbench.setHuggingFaceToken', async () => {
      if (await setHuggingFaceToken(ctx.secrets)) ctx.estimates.shapesChanged();
    }),
    command('wattbench.testHost', async (arg?: unknown) => {
      const host = arg instanceof HostItem ? arg.host : typeof arg === 'string' ? arg : (await vscode.window.showQuickPick(configuredHosts(), { title: 'Test which host?' }));
      if (!host) return;
      try {
        const found = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Wattbench: connecting to ${host}` }, () => testHostConnection(host, extensionUri, ctx.log, ctx.secrets, ctx.shapes?.hostCaches));
        ctx.hostsTree.setDetail(host, found);
        ctx.estimates.shapesChanged();
        void vscode.window.showInformationMessage(`Wattbench: ${host}: ${found}`);
      } catch (error) {
        ctx.hostsTree.setDetail(host, 'unreachable');
        const choice = await vscode.window.showErrorMessage(`Wattbench: ${host}: ${(error as Error).message}`, 'Show Log');
        if (choice) ctx.log.show();
      }
    }),
    command('wattbench.calibrate', async () => {
      const store = manager.store;
      const path = calibrationPath();
      if (!store || !path) return;
      let found = measurementsFromRuns(store.list());
      if (found.simulated) {
        // The simulator is not a GPU: fitting to it is only ever done when the user says so.
        const include = 'Include Simulated Runs';
        const choice = await vscode.window.showWarningMessage(
          `Wattbench: ${found.simulated} run(s) measured simulated GPUs. Calibrating on them fits the estimator to the simulator, not to your hardware.`,
          include,
          found.measurements.length >= 2 ? 'Real Runs Only' : 'Cancel',
        );
        if (choice === include) found = measurementsFromRuns(store.list(), { includeSimulated: true });
        else if (choice !== 'Real Runs Only') return;
      }
      const { measurements, skipped } = found;
      if (measurements.length < 2) {
        void vscode.window.showWarningMessage(`Wattbench: calibration needs at least two measured points; found ${measurements.length}.${skipped.length ? ` Skipped: ${skipped.slice(0, 3).join('; ')}` : ''}`);
        return;
      }
      const result = calibrateDetailed(measurements);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, `${JSON.stringify(result.profile, null, 2)}\n`);
      ctx.estimates.setProfile(result.profile);
      const loo = calibrationLoo(result.profile);
      void vscode.window.showInformationMessage(
        `Wattbench: calibrated on ${measurements.length} measured points (${result.profile.entries.length} profile entr${result.profile.entries.length === 1 ? 'y' : 'ies'})` +
          `${loo !== null && loo !== undefined ? `, leave-one-out error ${(loo * 100).toFixed(1)}%` : ''}. Estimates now use it.`,
      );
    }),
  ];
}

/** The worst leave-one-out error of a profile's entries, shown beside calibrated predictions. */
export function calibrationLoo(profile: CalibrationProfile | undefined): number | null | undefined {
  const errors = profile?.entries.map((e) => e.loo_error).filter((e): e is number => e !== null && e !== undefined) ?? [];
  return errors.length ? Math.max(...errors) : profile ? null : undefined;
}
