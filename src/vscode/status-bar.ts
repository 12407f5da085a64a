import * as vscode from 'vscode';
import type { RunManager } from './run-manager';

/** Live watts and progress while a run is active; a click opens its live view. */
export class RunStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('wattbench.run', vscode.StatusBarAlignment.Left, 50);
  private readonly subscriptions: vscode.Disposable[] = [];
  private timer?: NodeJS.Timeout;

  constructor(private readonly manager: RunManager) {
    this.item.name = 'Wattbench run';
    this.subscriptions.push(manager.onDidUpdateRun(() => this.schedule()), manager.onDidChangeRuns(() => this.update()));
    this.update();
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.update();
    }, 500);
  }

  private update(): void {
    const running = this.manager.list().filter((r) => this.manager.isRunning(r.id));
    if (running.length === 0) {
      this.item.hide();
      return;
    }
    const run = running[running.length - 1];
    const reconnecting = run.tracker.state.status === 'reconnecting';
    this.item.text = `$(${reconnecting ? 'debug-disconnect' : 'pulse'}) ${Math.round(run.watts)} W · ${Math.min(run.pointsDone + 1, run.pointsTotal)}/${run.pointsTotal}${running.length > 1 ? ` (+${running.length - 1})` : ''}`;
    this.item.tooltip = `Wattbench: ${run.configName} on ${run.target} — ${run.tracker.state.phase}${run.tracker.state.simulated ? ' (simulated GPUs)' : ''}${reconnecting ? `\n${run.tracker.state.message ?? 'reconnecting'}` : ''}\nClick to open the live view.`;
    this.item.command = { command: 'wattbench.openLiveView', title: 'Open live view', arguments: [run.id] };
    this.item.show();
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.subscriptions.forEach((s) => s.dispose());
    this.item.dispose();
  }
}
