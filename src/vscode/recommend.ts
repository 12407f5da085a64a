/** "Recommend" on a config with an `slo`: the cheapest point that meets it, predicted and measured, as a Markdown preview. */
import { relative } from 'node:path';
import * as vscode from 'vscode';
import { OBJECTIVES, recommendationText, type Objective } from '../core/recommend';
import { measuredRunsOf, recommendForConfig } from '../core/workspace/recommend';
import type { EstimateService } from './estimates';
import { showPreviewDocument } from './preview-documents';
import type { RunManager } from './run-manager';

export async function recommendCommand(uri: vscode.Uri, estimates: EstimateService, manager: RunManager): Promise<void> {
  const { loaded } = estimates.get(await vscode.workspace.openTextDocument(uri));
  if (!loaded.config) {
    void vscode.window.showErrorMessage("Wattbench: fix the config's errors first; a recommendation needs a valid config.");
    return;
  }
  const pick = await vscode.window.showQuickPick(
    OBJECTIVES.map((o) => ({ label: o, description: o === 'j_per_token' ? 'lowest energy per output token' : 'lowest $ per million tokens: energy and GPU-hours' })),
    { title: 'Recommend the point with the lowest …' },
  );
  if (!pick) return;
  const config = loaded.config;
  const workspace = vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath;
  const runs = measuredRunsOf(manager.store?.list() ?? [], config, workspace ? relative(workspace, uri.fsPath) : undefined);
  const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Wattbench: searching for the cheapest point that meets the SLO' }, async () =>
    recommendForConfig(config, loaded.points, runs, { objective: pick.label as Objective, profile: estimates.calibration }),
  );
  const sections = [
    `# Wattbench recommendation — ${config.name}`,
    ...(result.measured ? ['', '```text', ...recommendationText(result.measured), '```'] : ['', 'No completed runs of this config yet: the recommendation below is a prediction.']),
    ...(result.prediction ? ['', '```text', ...recommendationText(result.prediction), '```'] : ['', `No prediction: ${result.predictionError}`]),
  ];
  // One document per config, refreshed by the next Recommend of it.
  await showPreviewDocument('recommendation', `Recommendation ${config.name}`, sections.join('\n'));
}
