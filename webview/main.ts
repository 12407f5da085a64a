// The browser side of Wattbench's panels: the live view and the result viewer.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import { Chart, Decimation, Legend, LinearScale, LineController, LineElement, PointElement, ScatterController, Tooltip, type ChartDataset } from 'chart.js';
import type { HostToLive, HostToResult, LiveState, ResultRun, ViewToHost } from '../src/core/protocol/webview';
import type { PointSummary, RunSummary } from '../src/core/protocol/summary';

Chart.register(LineController, ScatterController, LineElement, PointElement, LinearScale, Legend, Tooltip, Decimation);

declare function acquireVsCodeApi(): { postMessage(message: ViewToHost): void; setState(state: unknown): void; getState(): unknown };
const vscode = acquireVsCodeApi();
const app = document.getElementById('app')!;
const view = document.body.dataset.view;

const css = (name: string, fallback: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
const PALETTE = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-yellow', '--vscode-charts-red'];
const color = (i: number) => css(PALETTE[i % PALETTE.length], ['#3794ff', '#d18616', '#89d185', '#b180d7', '#cca700', '#f14c4c'][i % 6]);
Chart.defaults.color = css('--vscode-editor-foreground', '#ccc');
Chart.defaults.borderColor = css('--vscode-editorWidget-border', 'rgba(128,128,128,0.3)');
Chart.defaults.font.family = css('--vscode-font-family', 'sans-serif');

const style = document.createElement('style');
style.textContent = `
  body { color: var(--vscode-editor-foreground); background: var(--vscode-editor-background); font-family: var(--vscode-font-family); padding: 0 16px 24px; }
  h1 { font-size: 1.2em; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
  .card { border: 1px solid var(--vscode-editorWidget-border, #444); border-radius: 4px; padding: 8px; position: relative; }
  .card h2 { font-size: 1em; margin: 0 0 6px; display: flex; justify-content: space-between; }
  .chart { height: 240px; }
  table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
  th, td { border-bottom: 1px solid var(--vscode-editorWidget-border, #444); padding: 3px 6px; text-align: right; white-space: nowrap; }
  th:first-child, td:first-child { text-align: left; }
  .sim { color: var(--vscode-editorWarning-foreground); font-weight: bold; }
  .muted { opacity: 0.75; }
  .error { color: var(--vscode-errorForeground); }
  .scroll { overflow-x: auto; }
  button.link { background: none; border: none; color: var(--vscode-textLink-foreground); cursor: pointer; padding: 0; font-size: 0.85em; }
`;
document.head.appendChild(style);

const fmt = (v: number | undefined | null, digits = 3) => (v === undefined || v === null || !Number.isFinite(v) ? '–' : Number(v.toPrecision(digits)).toLocaleString());
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function lineChart(canvas: HTMLCanvasElement, yTitle: string, extra: Record<string, unknown> = {}): Chart {
  return new Chart(canvas, {
    type: 'line',
    data: { datasets: [] },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      responsive: true,
      maintainAspectRatio: false,
      spanGaps: true,
      elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
      scales: { x: { type: 'linear', title: { display: true, text: 'seconds' } }, y: { title: { display: true, text: yTitle }, beginAtZero: true } },
      plugins: { decimation: { enabled: true, algorithm: 'lttb', samples: 800 }, legend: { labels: { boxWidth: 12 } } },
      ...extra,
    },
  });
}

function scatterChart(canvas: HTMLCanvasElement, xTitle: string, yTitle: string, extra: Record<string, unknown> = {}): Chart {
  return new Chart(canvas, {
    type: 'scatter',
    data: { datasets: [] },
    options: {
      ...extra,
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: { x: { title: { display: true, text: xTitle } }, y: { title: { display: true, text: yTitle }, beginAtZero: true } },
      plugins: { legend: { labels: { boxWidth: 12 } } },
    },
  });
}

function pngButton(chart: () => Chart | undefined, name: string): string {
  const id = `png-${name}`;
  queueMicrotask(() => document.getElementById(id)?.addEventListener('click', () => {
    const c = chart();
    if (c) vscode.postMessage({ type: 'savePng', name, dataUrl: c.toBase64Image('image/png', 1) });
  }));
  return `<button class="link" id="${id}" title="Save as PNG">PNG</button>`;
}

// ---------------------------------------------------------------------------------------------- live

type XY = { x: number; y: number };

/**
 * A series the chart can redraw cheaply however long the run: past MAX_DRAWN points the older half is
 * averaged in pairs (averaging keeps the area, so a power curve still shows the energy). The live view
 * draws these; the full-resolution data stays in the run's store.
 */
class ThinnedSeries {
  // The charts sit in a grid of ≥ 420 px columns: 750–1,000 points is one or more per pixel of a
  // chart as wide as a large screen; more would be drawn over each other.
  static readonly MAX_DRAWN = 1000;
  readonly data: XY[] = [];

  push(x: number, y: number): void {
    this.data.push({ x, y });
    if (this.data.length > ThinnedSeries.MAX_DRAWN) {
      const half = this.data.length >> 1;
      const thinned: XY[] = [];
      for (let i = 0; i + 1 < half; i += 2) thinned.push({ x: (this.data[i].x + this.data[i + 1].x) / 2, y: (this.data[i].y + this.data[i + 1].y) / 2 });
      this.data.splice(0, half - (half % 2), ...thinned);
    }
  }
}

/** Only the most recent requests are drawn as points: an hour of them would be tens of thousands. */
const LATENCY_POINTS = 2000;

class LiveView {
  private state?: LiveState;
  private power?: Chart;
  private throughput?: Chart;
  private latency?: Chart;
  private perGpu: ThinnedSeries[] = [];
  private total = new ThinnedSeries();
  private tps = new ThinnedSeries();
  private inflight = new ThinnedSeries();
  private ttft: XY[] = [];
  private e2e: XY[] = [];
  private dirty = new Set<'power' | 'throughput' | 'latency' | 'text'>();
  private frame?: number;

  constructor() {
    app.innerHTML = `
      <h1><span id="title">Waiting for the run…</span> <vscode-badge id="status">starting</vscode-badge> <span id="sim" class="sim"></span>
        <vscode-button id="cancel" secondary>Cancel run</vscode-button></h1>
      <div class="muted">phase <b id="phase">–</b> · point <b id="point">–</b> · <span id="progress">–</span> · <span id="sample-count">0</span> samples · <span id="watts">–</span></div>
      <div id="message" class="error"></div>
      <div class="grid">
        <div class="card"><h2>Power (W) ${pngButton(() => this.power, 'power')}</h2><div class="chart"><canvas id="c-power"></canvas></div></div>
        <div class="card"><h2>Output tokens/s and requests in flight ${pngButton(() => this.throughput, 'throughput')}</h2><div class="chart"><canvas id="c-tps"></canvas></div></div>
        <div class="card"><h2>Latency (s) of the last ${LATENCY_POINTS} requests: TTFT and end-to-end ${pngButton(() => this.latency, 'latency')}</h2><div class="chart"><canvas id="c-lat"></canvas></div></div>
        <div class="card"><h2>Points: predicted against measured</h2><div class="scroll"><table id="points"></table></div></div>
      </div>`;
    document.getElementById('cancel')!.addEventListener('click', () => vscode.postMessage({ type: 'cancel' }));
    // Series are thinned here, so chart.js's own decimation (which reprocesses everything) stays off.
    this.power = lineChart(document.getElementById('c-power') as HTMLCanvasElement, 'W', { plugins: { decimation: { enabled: false }, legend: { labels: { boxWidth: 12 } } } });
    this.throughput = lineChart(document.getElementById('c-tps') as HTMLCanvasElement, 'tokens/s', {
      plugins: { decimation: { enabled: false }, legend: { labels: { boxWidth: 12 } } },
      scales: { x: { type: 'linear', title: { display: true, text: 'seconds' } }, y: { beginAtZero: true, title: { display: true, text: 'tokens/s' } }, y1: { position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'in flight' } } },
    });
    // Points are already {x, y} numbers: chart.js need not parse thousands of them on every update.
    this.latency = scatterChart(document.getElementById('c-lat') as HTMLCanvasElement, 'seconds', 'latency (s)', { parsing: false });
  }

  snapshot(state: LiveState): void {
    this.state = state;
    vscode.setState({ runId: state.runId });
    this.perGpu = state.gpus.map(() => new ThinnedSeries());
    this.total = new ThinnedSeries();
    for (const sample of state.samples) this.addSample(sample);
    this.tps = new ThinnedSeries();
    this.inflight = new ThinnedSeries();
    for (const p of state.throughput) {
      this.tps.push(p.t, p.tps);
      this.inflight.push(p.t, p.inflight);
    }
    const recent = state.latency.slice(-LATENCY_POINTS);
    this.ttft = recent.filter((l) => Number.isFinite(l.ttft)).map((l) => ({ x: l.t, y: l.ttft }));
    this.e2e = recent.map((l) => ({ x: l.t, y: l.e2e }));
    this.buildDatasets();
    this.schedule('power', 'throughput', 'latency', 'text');
  }

  append(m: Extract<HostToLive, { type: 'append' }>): void {
    const s = this.state;
    if (!s) return;
    for (const sample of m.samples) {
      s.samples.push(sample);
      this.addSample(sample);
    }
    if (this.perGpu.length !== s.gpus.length) this.buildDatasets();
    for (const p of m.throughput) {
      this.tps.push(p.t, p.tps);
      this.inflight.push(p.t, p.inflight);
    }
    for (const l of m.latency) {
      if (Number.isFinite(l.ttft)) this.ttft.push({ x: l.t, y: l.ttft });
      this.e2e.push({ x: l.t, y: l.e2e });
    }
    if (this.e2e.length > LATENCY_POINTS) this.e2e.splice(0, this.e2e.length - LATENCY_POINTS);
    if (this.ttft.length > LATENCY_POINTS) this.ttft.splice(0, this.ttft.length - LATENCY_POINTS);
    const capChanged = s.capW !== m.capW || s.idleW !== m.idleW;
    Object.assign(s, { phase: m.phase, currentPoint: m.currentPoint, points: m.points, status: m.status, message: m.message, summary: m.summary, capW: m.capW, idleW: m.idleW });
    if (capChanged) this.buildDatasets();
    this.schedule(...(m.samples.length || capChanged ? (['power'] as const) : []), ...(m.throughput.length ? (['throughput'] as const) : []), ...(m.latency.length ? (['latency'] as const) : []), 'text');
  }

  private addSample({ t, p, total }: LiveState['samples'][number]): void {
    p.forEach((w, i) => {
      const series = (this.perGpu[i] ??= new ThinnedSeries());
      if (Number.isFinite(w)) series.push(t, w);
    });
    this.total.push(t, total ?? p.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0));
  }

  /** Dataset objects are made once (and again only when GPUs, the cap or the idle line change). */
  private buildDatasets(): void {
    const s = this.state!;
    const gpuCount = s.gpus.length;
    const flat = (value: number | null, label: string, i: number): ChartDataset<'line', XY[]> | undefined =>
      value === null ? undefined : { label, data: [{ x: 0, y: value }, { x: 0, y: value }], borderColor: color(i), borderDash: [6, 4], borderWidth: 1 };
    this.power!.data.datasets = [
      ...s.gpus.map((g, i) => ({ label: `GPU ${g}`, data: (this.perGpu[i] ??= new ThinnedSeries()).data, borderColor: color(i) })),
      ...(gpuCount > 1 ? [{ label: 'total', data: this.total.data, borderColor: css('--vscode-editor-foreground', '#ccc'), borderWidth: 2 }] : []),
      flat(s.idleW, 'idle baseline (total)', 4),
      flat(s.capW === null ? null : s.capW * Math.max(1, gpuCount), gpuCount > 1 ? 'power cap × GPUs' : 'power cap', 5),
    ].filter((d): d is ChartDataset<'line', XY[]> => !!d) as never;
    this.throughput!.data.datasets = [
      { label: 'output tokens/s', data: this.tps.data, borderColor: color(0), yAxisID: 'y' },
      { label: 'requests in flight', data: this.inflight.data, borderColor: color(1), yAxisID: 'y1', stepped: true },
    ] as never;
    this.latency!.data.datasets = [
      // Borderless dots: thousands of them, and a stroke per dot would double what is rasterised.
      { label: 'TTFT', data: this.ttft, backgroundColor: color(2), pointRadius: 2, pointBorderWidth: 0 },
      { label: 'end-to-end', data: this.e2e, backgroundColor: color(3), pointRadius: 2, pointBorderWidth: 0 },
    ] as never;
  }

  /** Marks what changed and draws it at the next frame: bursts of messages cost one draw. */
  private schedule(...parts: ('power' | 'throughput' | 'latency' | 'text')[]): void {
    for (const p of parts) this.dirty.add(p);
    this.frame ??= requestAnimationFrame(() => {
      this.frame = undefined;
      this.render();
    });
  }

  /** Draws what changed; the `wattbench:live-render` performance measure lets DevTools (and npm run bench) time it. */
  render(): void {
    const started = performance.now();
    this.draw();
    performance.measure('wattbench:live-render', { start: started });
  }

  private draw(): void {
    const dirty = new Set(this.dirty);
    this.dirty.clear();
    const s = this.state;
    if (!s) return;
    if (dirty.has('power')) {
      // The idle and cap lines span the time drawn so far.
      const end = this.total.data[this.total.data.length - 1]?.x ?? 0;
      for (const d of this.power!.data.datasets) if ((d as { borderDash?: number[] }).borderDash) (d.data[1] as XY).x = end;
      this.power!.update('none');
    }
    if (dirty.has('throughput')) this.throughput!.update('none');
    if (dirty.has('latency')) this.latency!.update('none');
    if (dirty.has('text')) this.renderText(s);
  }

  private renderText(s: LiveState): void {
    const set = (id: string, text: string) => (document.getElementById(id)!.textContent = text);
    set('title', s.title);
    set('status', s.status);
    set('sim', s.simulated ? 'SIMULATED GPUs' : '');
    set('phase', s.phase);
    set('point', s.points.find((p) => p.id === s.currentPoint)?.label ?? '–');
    const done = s.points.filter((p) => !['pending', 'running'].includes(p.status)).length;
    set('progress', `${done}/${s.points.length} points done`);
    set('sample-count', String(s.samples.length));
    const last = this.total.data[this.total.data.length - 1];
    set('watts', last ? `${Math.round(last.y)} W now` : '–');
    set('message', s.message ?? '');
    (document.getElementById('cancel') as HTMLElement).style.display = ['running', 'reconnecting'].includes(s.status) ? '' : 'none';
    const measured = new Map((s.summary?.points ?? []).map((p) => [p.point, p]));
    document.getElementById('points')!.innerHTML =
      '<tr><th>point</th><th>status</th><th>J/token predicted</th><th>measured</th><th>W predicted</th><th>measured</th><th>tok/s predicted</th><th>measured</th></tr>' +
      s.points
        .map((p) => {
          const m = measured.get(p.id);
          return `<tr><td>${esc(p.label)}</td><td>${p.status}</td><td>${fmt(p.predicted?.j_per_output_token)}</td><td>${fmt(m?.j_per_output_token)}</td><td>${fmt(p.predicted?.avg_power_w_total)}</td><td>${fmt(m?.energy.avg_power_w)}</td><td>${fmt(p.predicted?.output_tokens_per_s)}</td><td>${fmt(m?.throughput.output_tokens_per_s)}</td></tr>`;
        })
        .join('');
  }
}

// -------------------------------------------------------------------------------------------- result

class ResultView {
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
    const name = (r: ResultRun) => (runs.length > 1 ? `${r.title} · ${r.started.slice(0, 16).replace('T', ' ')}` : r.title);
    const runLabel = (r: ResultRun) => (runs.length > 1 ? name(r) : undefined);
    app.innerHTML = `
      <h1>${runs.map((r) => `${esc(name(r))} <vscode-badge>${esc(r.status)}</vscode-badge>${r.simulated ? ' <span class="sim">SIMULATED GPUs</span>' : ''}`).join(' &nbsp;vs&nbsp; ')}</h1>
      ${runs.map((r) => `<div class="muted">${esc(r.runId)} on ${esc(r.target)}${r.slurm ? ` · Slurm job <b id="slurm-job">${esc(r.slurm.job_id)}</b> ${esc(r.slurm.state ?? '')}${r.slurm.queue_wait_s !== undefined ? `, queued ${fmt(r.slurm.queue_wait_s)} s` : ''}${r.slurm.nodes ? ` on ${esc(r.slurm.nodes.join(', '))}` : ''}` : ''} · energy from the ${esc(r.summary.points[0]?.energy.method ?? 'none')} · sampling ${fmt(r.summary.telemetry.achieved_interval_s)} s · idle ${fmt(r.summary.idle_baseline?.total_w)} W
        ${r.error ? `<div class="error">${esc(r.error)}</div>` : ''}${r.summary.errors.map((e) => `<div class="error">${esc(e.where)}: ${esc(e.message)}</div>`).join('')}
        <vscode-button secondary data-csv="${esc(r.runId)}" style="margin-left: 8px">Export CSV</vscode-button></div>`).join('')}
      ${runs.map((r) => this.perGpuRows(r)).join('')}
      <div class="card"><h2>Summary per point</h2><div class="scroll"><table id="summary-table">${runs.map((r) => this.summaryRows(r, runLabel(r))).join('')}</table></div></div>
      <div class="grid">
        <div class="card"><h2>Power timeline (W, all GPUs) ${pngButton(() => this.charts.get('power'), 'power-timeline')}</h2><div class="chart"><canvas id="r-power"></canvas></div></div>
        <div class="card"><h2>Pareto: J/token against throughput ${pngButton(() => this.charts.get('pareto'), 'pareto-throughput')}</h2><div class="chart"><canvas id="r-pareto"></canvas></div></div>
        <div class="card"><h2>Pareto: J/token against latency (p50, p99) ${pngButton(() => this.charts.get('pareto-lat'), 'pareto-latency')}</h2><div class="chart"><canvas id="r-pareto-lat"></canvas></div></div>
        <div class="card"><h2>Throughput and latency per point ${pngButton(() => this.charts.get('tput'), 'throughput-latency')}</h2><div class="chart"><canvas id="r-tput"></canvas></div></div>
      </div>
      <div class="card"><h2>Predicted against measured${message.calibrationError !== undefined && message.calibrationError !== null ? ` (calibration leave-one-out error ${fmt(message.calibrationError * 100, 2)}%)` : ''}</h2><div class="scroll"><table id="prediction-table">${runs.map((r) => this.predictionRows(r, runLabel(r))).join('')}</table></div></div>
      <div class="card"><h2>Idealized runtime (HELM: T = α + β·(o − 1), fitted to each point's requests; denoised: to the fastest of repeated requests, plus an overhead)</h2><div class="scroll"><table id="idealized-table">${runs.map((r) => this.idealizedRows(r, runLabel(r))).join('')}</table></div></div>
      ${runs.some((r) => r.notes.length) ? `<div class="card"><h2>Notes</h2>${runs.map((r) => r.notes.map((n) => `<div class="muted">${esc(n)}</div>`).join('')).join('')}</div>` : ''}`;
    app.querySelectorAll<HTMLElement>('[data-csv]').forEach((b) => b.addEventListener('click', () => vscode.postMessage({ type: 'exportCsv', runId: b.dataset.csv! })));

    const power = lineChart(document.getElementById('r-power') as HTMLCanvasElement, 'W');
    power.data.datasets = runs.map((r, i) => ({ label: name(r), data: r.power.map((p) => ({ x: p.t, y: p.w })), borderColor: color(i) })) as never;
    power.update('none');
    this.charts.set('power', power);

    const pareto = scatterChart(document.getElementById('r-pareto') as HTMLCanvasElement, 'output tokens/s', 'J per output token');
    pareto.data.datasets = runs.map((r, i) => ({ label: name(r), data: okPoints(r.summary).map((p) => ({ x: p.throughput.output_tokens_per_s, y: p.j_per_output_token })), backgroundColor: color(i), pointRadius: 4, showLine: true, borderColor: color(i) })) as never;
    pareto.update('none');
    this.charts.set('pareto', pareto);

    const paretoLat = scatterChart(document.getElementById('r-pareto-lat') as HTMLCanvasElement, 'end-to-end latency (s)', 'J per output token');
    paretoLat.data.datasets = runs.flatMap((r, i) => [
      { label: `${name(r)} p50`, data: okPoints(r.summary).map((p) => ({ x: p.latency.e2e_s?.p50 ?? NaN, y: p.j_per_output_token })), backgroundColor: color(i), pointRadius: 4 },
      { label: `${name(r)} p99`, data: okPoints(r.summary).map((p) => ({ x: p.latency.e2e_s?.p99 ?? NaN, y: p.j_per_output_token })), backgroundColor: color(i), pointStyle: 'triangle', pointRadius: 5 },
    ]) as never;
    paretoLat.update('none');
    this.charts.set('pareto-lat', paretoLat);

    const tput = scatterChart(document.getElementById('r-tput') as HTMLCanvasElement, 'point (in order)', 'tokens/s');
    tput.data.datasets = runs.map((r, i) => ({ label: `${name(r)} tok/s`, data: okPoints(r.summary).map((p, k) => ({ x: k + 1, y: p.throughput.output_tokens_per_s })), backgroundColor: color(i), borderColor: color(i), showLine: true, pointRadius: 4 })) as never;
    tput.update('none');
    this.charts.set('tput', tput);
  }

  private summaryRows(r: ResultRun, run?: string): string {
    const head = `<tr>${runHead(run)}<th>point</th><th>status</th><th>time s</th><th>ok</th><th>err</th><th>in tok</th><th>out tok</th><th>tok/s</th><th>req/s</th><th>TTFT p50 s</th><th>TTFT p99 s</th><th>ITL p50 s</th><th>e2e p50 s</th><th>e2e p99 s</th><th>avg W</th><th>peak W</th><th>energy J</th><th>idle J</th><th>dynamic J</th><th>J/token</th><th>steady J/token</th><th>J/resp</th><th>$</th><th>gCO2</th><th>cap W</th></tr>`;
    const rows = r.summary.points.map((p) => `<tr>${runCell(run)}<td>${esc(r.labels[p.point] ?? p.point)}</td><td>${p.status}</td><td>${fmt(p.window.duration_s)}</td><td>${p.requests.ok}</td><td>${p.requests.errors}</td><td>${p.tokens.input}</td><td>${p.tokens.output}</td><td>${fmt(p.throughput.output_tokens_per_s)}</td><td>${fmt(p.throughput.requests_per_s)}</td><td>${fmt(p.latency.ttft_s?.p50)}</td><td>${fmt(p.latency.ttft_s?.p99)}</td><td>${fmt(p.latency.itl_s?.p50)}</td><td>${fmt(p.latency.e2e_s?.p50)}</td><td>${fmt(p.latency.e2e_s?.p99)}</td><td>${fmt(p.energy.avg_power_w)}</td><td>${fmt(p.energy.peak_power_w)}</td><td>${fmt(p.energy.total_j, 4)}</td><td>${fmt(p.energy.idle_j, 4)}</td><td>${fmt(p.energy.dynamic_j, 4)}</td><td>${fmt(p.j_per_output_token)}</td><td>${fmt(p.steady?.j_per_output_token)}</td><td>${fmt(p.j_per_response)}</td><td>${fmt(p.cost.usd, 2)}</td><td>${fmt(p.cost.gco2)}</td><td>${fmt(p.power_cap_w)}</td></tr>`);
    return head + rows.join('');
  }

  private predictionRows(r: ResultRun, run?: string): string {
    const head = `<tr>${runHead(run)}<th>point</th><th>basis</th><th>J/token predicted</th><th>measured</th><th>error</th><th>tok/s predicted</th><th>measured</th><th>W predicted</th><th>measured</th></tr>`;
    return head + r.summary.points.map((p) => {
      const pred = r.predictions[p.point];
      const err = pred && Number.isFinite(p.j_per_output_token) ? (pred.j_per_output_token / p.j_per_output_token - 1) * 100 : NaN;
      return `<tr>${runCell(run)}<td>${esc(r.labels[p.point] ?? p.point)}</td><td>${esc(pred?.basis ?? '–')}</td><td>${fmt(pred?.j_per_output_token)}</td><td>${fmt(p.j_per_output_token)}</td><td>${Number.isFinite(err) ? `${err > 0 ? '+' : ''}${err.toFixed(1)}%` : '–'}</td><td>${fmt(pred?.output_tokens_per_s)}</td><td>${fmt(p.throughput.output_tokens_per_s)}</td><td>${fmt(pred?.avg_power_w)}</td><td>${fmt(p.energy.avg_power_w)}</td></tr>`;
    }).join('');
  }

  /** Energy per node and GPU (several hosts or a Slurm allocation): each one measured, none extrapolated. */
  private perGpuRows(r: ResultRun): string {
    const gpus = new Map<string, number>();
    for (const p of r.summary.points) for (const g of p.energy.per_gpu) gpus.set(g.gpu, (gpus.get(g.gpu) ?? 0) + g.energy_j);
    if (gpus.size < 2) return '';
    return `<div class="card"><h2>Energy per node and GPU (J, all points)</h2><table id="per-gpu-table"><tr><th>GPU</th><th>energy J</th><th>idle W</th></tr>${[...gpus.entries()].map(([g, j]) => `<tr><td>${esc(g)}</td><td>${fmt(j, 4)}</td><td>${fmt(r.summary.idle_baseline?.per_gpu_w[g])}</td></tr>`).join('')}</table></div>`;
  }

  private idealizedRows(r: ResultRun, run?: string): string {
    return `<tr>${runHead(run)}<th>point</th><th>α (s)</th><th>β (s/token)</th><th>requests fitted</th><th>denoised α (s)</th><th>denoised β (s/token)</th><th>overhead (s)</th><th>repeats</th></tr>` +
      r.summary.points.map((p) => {
        const d = r.denoised[p.point];
        return `<tr>${runCell(run)}<td>${esc(r.labels[p.point] ?? p.point)}</td><td>${fmt(p.idealized?.alpha_s)}</td><td>${fmt(p.idealized?.beta_s)}</td><td>${p.idealized?.n ?? '–'}</td><td>${fmt(d?.alpha_s)}</td><td>${fmt(d?.beta_s)}</td><td>${fmt(d?.overhead_s)}</td><td>${d?.repeats ?? '–'}</td></tr>`;
      }).join('');
  }
}

/** In a comparison every table row says which run it is from; a single run's tables have no run column. */
const runHead = (run?: string) => (run === undefined ? '' : '<th>run</th>');
const runCell = (run?: string) => (run === undefined ? '' : `<td>${esc(run)}</td>`);

function okPoints(summary: RunSummary): PointSummary[] {
  return summary.points.filter((p) => p.tokens.output > 0);
}

// ---------------------------------------------------------------------------------------------- wire

const live = view === 'live' ? new LiveView() : undefined;
const result = view === 'result' ? new ResultView() : undefined;
window.addEventListener('message', (event: MessageEvent<HostToLive | HostToResult>) => {
  const message = event.data;
  if (message.type === 'snapshot') live?.snapshot(message.state);
  else if (message.type === 'append') live?.append(message);
  else if (message.type === 'result') result?.render(message);
});
vscode.postMessage({ type: 'ready' });
