// The result view: one stored run, or several side by side (Compare Runs), in tables and charts.
import type { Chart } from 'chart.js';
import type { PointSummary, RunSummary } from '../src/core/protocol/summary';
import type { HostToResult, ResultRun } from '../src/core/protocol/webview';
import { canvas, chartCard, color, lineChart, scatterChart, sloMarkers } from './charts';
import { anySlo, runNames } from './compare';
import { app, esc, fmt, tableCard, vscode } from './dom';
import { powerSeries } from './power';
import { idealizedRows, perGpuRows, predictionRows, sloRows, summaryRows } from './tables';

const IDEALIZED =
  "Idealized runtime (HELM: T = α + β·(o − 1), fitted to each point's requests; " +
  'denoised: to the fastest of repeated requests, plus an overhead)';

const SLO_TITLE = 'Against the SLO (goodput: requests meeting every objective)';

export class ResultView {
  private charts = new Map<string, Chart>();

  render(message: HostToResult): void {
    const runs = message.runs;
    vscode.setState({ runIds: runs.map((r) => r.runId) });
    this.charts.forEach((c) => c.destroy());
    this.charts.clear();
    if (!runs.length) {
      app.innerHTML = '<p>No such run in this workspace.</p>';
      return;
    }
    const { name, row } = runNames(runs);
    const slo = anySlo(runs);
    const sloLegend = slo ? ' (★ met the SLO, ✕ missed it)' : '';
    // Each chart's canvas is r-<key>; the key names it in this.charts, for its PNG button.
    const card = (title: string, png: string, key: string) =>
      chartCard(title, png, `r-${key}`, () => this.charts.get(key));
    const error = message.calibrationError;
    const calibration =
      error !== undefined && error !== null ? ` (calibration leave-one-out error ${fmt(error * 100, 2)}%)` : '';
    app.innerHTML = `
      <h1>${runs.map((r) => heading(r, name(r))).join(' &nbsp;vs&nbsp; ')}</h1>
      ${runs.map((r) => runLine(r)).join('')}
      ${perGpuRows(runs, row)}
      ${tableCard('Summary per point', 'summary-table', summaryRows(runs, row))}
      ${slo ? tableCard(SLO_TITLE, 'slo-table', sloRows(runs, row)) : ''}
      <div class="grid">
        ${card('Power timeline (W, all GPUs)', 'power-timeline', 'power')}
        ${card(`Pareto: J/token against throughput${sloLegend}`, 'pareto-throughput', 'pareto')}
        ${card('Pareto: J/token against latency (p50, p99)', 'pareto-latency', 'pareto-lat')}
        ${card('Throughput and latency per point', 'throughput-latency', 'tput')}
      </div>
      ${tableCard(`Predicted against measured${calibration}`, 'prediction-table', predictionRows(runs, row))}
      ${tableCard(IDEALIZED, 'idealized-table', idealizedRows(runs, row))}
      ${notes(runs)}`;
    for (const b of app.querySelectorAll<HTMLElement>('[data-csv]')) {
      b.addEventListener('click', () => vscode.postMessage({ type: 'exportCsv', runId: b.dataset.csv! }));
    }

    const power = lineChart(canvas('r-power'), 'W');
    this.draw(
      'power',
      power,
      runs.map((r, i) => ({ ...powerSeries(r, name(r)), borderColor: color(i) })),
    );

    const pareto = scatterChart(canvas('r-pareto'), 'output tokens/s', 'J per output token');
    this.draw(
      'pareto',
      pareto,
      runs.map((r, i) => ({
        label: name(r),
        data: okPoints(r.summary).map((p) => ({ x: p.throughput.output_tokens_per_s, y: p.j_per_output_token })),
        backgroundColor: color(i),
        ...sloMarkers(okPoints(r.summary)),
        showLine: true,
        borderColor: color(i),
      })),
    );

    const paretoLat = scatterChart(canvas('r-pareto-lat'), 'end-to-end latency (s)', 'J per output token');
    const latency = (r: ResultRun, q: 'p50' | 'p99') =>
      okPoints(r.summary).map((p) => ({ x: p.latency.e2e_s?.[q] ?? NaN, y: p.j_per_output_token }));
    this.draw(
      'pareto-lat',
      paretoLat,
      runs.flatMap((r, i) => [
        { label: `${name(r)} p50`, data: latency(r, 'p50'), backgroundColor: color(i), pointRadius: 4 },
        {
          label: `${name(r)} p99`,
          data: latency(r, 'p99'),
          backgroundColor: color(i),
          pointStyle: 'triangle',
          pointRadius: 5,
        },
      ]),
    );

    const tput = scatterChart(canvas('r-tput'), 'point (in order)', 'tokens/s');
    this.draw(
      'tput',
      tput,
      runs.map((r, i) => ({
        label: `${name(r)} tok/s`,
        data: okPoints(r.summary).map((p, k) => ({ x: k + 1, y: p.throughput.output_tokens_per_s })),
        backgroundColor: color(i),
        borderColor: color(i),
        showLine: true,
        pointRadius: 4,
      })),
    );
  }

  /** Gives `chart` its datasets, draws it once, and keeps it: for its PNG button, and to destroy on the next render. */
  private draw(key: string, chart: Chart, datasets: object[]): void {
    chart.data.datasets = datasets as never;
    chart.update('none');
    this.charts.set(key, chart);
  }
}

/** A run's part of the title: its name, status and whether its GPUs were simulated. */
function heading(r: ResultRun, name: string): string {
  const simulated = r.simulated ? ' <span class="sim">SIMULATED GPUs</span>' : '';
  const imported = isImported(r) ? ' <vscode-badge>imported</vscode-badge>' : '';
  return `${esc(name)} <vscode-badge>${esc(r.status)}</vscode-badge>${imported}${simulated}`;
}

/** A run another tool measured: its summary says `imported (<tool>)` as its telemetry source. */
const isImported = (r: ResultRun) => r.summary.telemetry.source.startsWith('imported');

/** Where and how the run was measured, its errors, and its Export CSV button. */
function runLine(r: ResultRun): string {
  const s = r.summary;
  const errors = s.errors.map((e) => `<div class="error">${esc(e.where)}: ${esc(e.message)}</div>`).join('');
  const method = s.points[0]?.energy.method ?? 'none';
  // Another tool's results (src/core/import/): no sampling or idle baseline of ours, energy only where its file had it.
  const energy = method === 'none' ? 'no energy in the file' : `energy from the tool's ${esc(method)}`;
  const sampling = `sampling ${fmt(s.telemetry.achieved_interval_s)} s · idle ${fmt(s.idle_baseline?.total_w)} W`;
  const measured = isImported(r)
    ? ` · ${esc(s.telemetry.source)} · ${energy}`
    : ` · energy from the ${esc(method)} · ${sampling}`;
  return `<div class="muted">${esc(r.runId)} on ${esc(r.target)}${slurm(r)}${measured}
        ${r.error ? `<div class="error">${esc(r.error)}</div>` : ''}${errors}
        <vscode-button secondary data-csv="${esc(r.runId)}" style="margin-left: 8px">Export CSV</vscode-button></div>`;
}

/** The Slurm job a run was, its state, wait in the queue and nodes. */
function slurm(r: ResultRun): string {
  if (!r.slurm) return '';
  const { job_id, state, queue_wait_s, nodes } = r.slurm;
  return (
    ` · Slurm job <b id="slurm-job">${esc(job_id)}</b> ${esc(state ?? '')}` +
    (queue_wait_s !== undefined ? `, queued ${fmt(queue_wait_s)} s` : '') +
    (nodes ? ` on ${esc(nodes.join(', '))}` : '')
  );
}

function notes(runs: ResultRun[]): string {
  if (!runs.some((r) => r.notes.length)) return '';
  const lines = runs.flatMap((r) => r.notes.map((n) => `<div class="muted">${esc(n)}</div>`));
  return `<div class="card"><h2>Notes</h2>${lines.join('')}</div>`;
}

/** The points that produced tokens: the others have no J/token to chart. */
function okPoints(summary: RunSummary): PointSummary[] {
  return summary.points.filter((p) => p.tokens.output > 0);
}
