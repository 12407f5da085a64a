import * as vscode from 'vscode';
import { readSummary, type RunMeta, type RunRecord } from '../core/store/store';
import type { PointSummary } from '../core/protocol/summary';
import type { RunManager } from './run-manager';

type Node = ConfigNode | RunNode | PointNode;

class ConfigNode extends vscode.TreeItem {
  constructor(
    readonly name: string,
    readonly runs: RunRecord[],
  ) {
    super(name, vscode.TreeItemCollapsibleState.Expanded);
    this.contextValue = 'wattbench.config';
    this.iconPath = new vscode.ThemeIcon('file-code');
    this.description = `${runs.length} run${runs.length === 1 ? '' : 's'}`;
  }
}

const STATUS_ICON: Record<string, [string, string?]> = {
  running: ['sync~spin', 'charts.blue'],
  ok: ['pass', 'testing.iconPassed'],
  error: ['error', 'testing.iconFailed'],
  cancelled: ['circle-slash', 'disabledForeground'],
  lost: ['question'],
};

const fmt = (v: number | undefined, digits = 3) => (v === undefined || !Number.isFinite(v) ? '–' : Number(v.toPrecision(digits)).toString());

export class RunNode extends vscode.TreeItem {
  constructor(
    readonly record: RunRecord,
    live: boolean,
  ) {
    super(new Date(record.meta.started).toLocaleString(), vscode.TreeItemCollapsibleState.Collapsed);
    const meta = record.meta;
    const status = live ? 'running' : meta.status;
    const summary = readSummary(record.dir);
    this.id = meta.run_id;
    this.contextValue = live ? 'wattbench.run.live' : 'wattbench.run';
    const [icon, color] = STATUS_ICON[status] ?? ['circle-outline'];
    // Another tool's results (`wattbench import`): meta.json says where they came from.
    const source = (meta as RunMeta & { source?: string }).source;
    this.iconPath = source ? new vscode.ThemeIcon('cloud-download') : new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
    this.description = summary?.total.output_tokens
      ? `${source && meta.target !== 'imported' ? 'imported · ' : ''}${meta.target} · ${fmt(summary.total.j_per_output_token)} J/token · ${fmt(summary.total.output_tokens / Math.max(1e-9, summary.points.reduce((s, p) => s + p.window.duration_s, 0)))} tok/s`
      : `${meta.target} · ${status}`;
    this.tooltip = new vscode.MarkdownString(
      `**${meta.config_name}** on ${meta.target} — ${status}${meta.simulated || summary?.simulated ? ' (SIMULATED GPUs)' : ''}${source ? ` — ${source}` : ''}\n\n${meta.run_id}${meta.slurm ? `\n\nSlurm job ${meta.slurm.job_id} ${meta.slurm.state ?? ''}${meta.slurm.queue_wait_s !== undefined ? `, queued ${Math.round(meta.slurm.queue_wait_s)} s` : ''}` : ''}${meta.error ? `\n\n${meta.error}` : ''}${meta.notes.length ? `\n\n${meta.notes.map((n) => `- ${n}`).join('\n')}` : ''}`,
    );
    this.command = { command: live ? 'wattbench.openLiveView' : 'wattbench.openResult', title: 'Open', arguments: [meta.run_id] };
  }

  get meta(): RunMeta {
    return this.record.meta;
  }
}

class PointNode extends vscode.TreeItem {
  constructor(runId: string, label: string, point?: PointSummary) {
    super(label, vscode.TreeItemCollapsibleState.None);
    this.contextValue = 'wattbench.point';
    const [icon, color] = STATUS_ICON[point?.status ?? 'lost'] ?? ['circle-outline'];
    this.iconPath = new vscode.ThemeIcon(point ? icon : 'circle-outline', color ? new vscode.ThemeColor(color) : undefined);
    this.description = point ? `${fmt(point.j_per_output_token)} J/token · ${fmt(point.throughput.output_tokens_per_s)} tok/s · ${fmt(point.energy.avg_power_w)} W` : 'not measured';
    this.command = { command: 'wattbench.openResult', title: 'Open', arguments: [runId] };
  }
}

/** Runs in the workspace by config → run → point, with status icons and J/token at a glance. */
export class RunsTree implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly manager: RunManager) {
    manager.onDidChangeRuns(() => this.changed.fire());
  }

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(node: Node): vscode.TreeItem {
    return node;
  }

  getChildren(node?: Node): Node[] {
    const store = this.manager.store;
    if (!store) return [];
    if (!node) {
      const byConfig = new Map<string, RunRecord[]>();
      for (const record of store.list()) {
        const list = byConfig.get(record.meta.config_name) ?? [];
        list.push(record);
        byConfig.set(record.meta.config_name, list);
      }
      return [...byConfig.entries()].map(([name, runs]) => new ConfigNode(name, runs));
    }
    if (node instanceof ConfigNode) return node.runs.map((r) => new RunNode(r, this.manager.isRunning(r.id)));
    if (node instanceof RunNode) {
      const summary = readSummary(node.record.dir);
      return node.meta.points.map((p) => new PointNode(node.meta.run_id, p.label, summary?.points.find((s) => s.point === p.id)));
    }
    return [];
  }
}
