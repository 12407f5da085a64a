// The live view: power, throughput and latency as the run goes, and how far its points are.
import type { Chart, ChartDataset } from 'chart.js';
import type { HostToLive, LiveState } from '../src/core/protocol/webview';
import { canvas, chartCard, color, lineChart, scatterChart, type XY } from './charts';
import { app, css, fmt, tableCard, tds, ths, vscode } from './dom';
import { ThinnedSeries } from './thinned-series';

/** Only the most recent requests are drawn as points: an hour of them would be tens of thousands. */
const LATENCY_POINTS = 2000;

type Part = 'power' | 'throughput' | 'latency' | 'text';

export class LiveView {
  private state?: LiveState;
  private power?: Chart;
  private throughput?: Chart;
  private latency?: Chart;
  private perGpu: ThinnedSeries[] = [];
  private total = new ThinnedSeries();
  private tps = new ThinnedSeries();
  private inflight = new ThinnedSeries();
  /** The engine's own metrics beside power (right-hand axes): running requests, KV-cache use in %. */
  private running = new ThinnedSeries();
  private kv = new ThinnedSeries();
  private ttft: XY[] = [];
  private e2e: XY[] = [];
  private dirty = new Set<Part>();
  private frame?: number;

  constructor() {
    const latencyTitle = `Latency (s) of the last ${LATENCY_POINTS} requests: TTFT and end-to-end`;
    app.innerHTML = `
      <h1><span id="title">Waiting for the run…</span> <vscode-badge id="status">starting</vscode-badge>
        <span id="sim" class="sim"></span>
        <vscode-button id="cancel" secondary>Cancel run</vscode-button></h1>
      <div class="muted">phase <b id="phase">–</b> · point <b id="point">–</b> · <span id="progress">–</span> ·
        <span id="sample-count">0</span> samples · <span id="watts">–</span></div>
      <div id="message" class="error"></div>
      <div class="grid">
        ${chartCard('Power (W)', 'power', 'c-power', () => this.power)}
        ${chartCard('Output tokens/s and requests in flight', 'throughput', 'c-tps', () => this.throughput)}
        ${chartCard(latencyTitle, 'latency', 'c-lat', () => this.latency)}
        ${tableCard('Points: predicted against measured', 'points', '')}
      </div>`;
    document.getElementById('cancel')!.addEventListener('click', () => vscode.postMessage({ type: 'cancel' }));
    // Series are thinned here, so chart.js's own decimation (which reprocesses everything) stays off.
    const plugins = () => ({ decimation: { enabled: false }, legend: { labels: { boxWidth: 12 } } });
    this.power = lineChart(canvas('c-power'), 'W', {
      plugins: plugins(),
      scales: {
        x: { type: 'linear', title: { display: true, text: 'seconds' } },
        y: { beginAtZero: true, title: { display: true, text: 'W' } },
        // 'auto': shown only once the engine's metrics arrive (an engine without them, a simulated run)
        y1: {
          display: 'auto',
          position: 'right',
          beginAtZero: true,
          grid: { drawOnChartArea: false },
          title: { display: true, text: 'running requests' },
        },
        y2: {
          display: 'auto',
          position: 'right',
          min: 0,
          max: 100,
          grid: { drawOnChartArea: false },
          title: { display: true, text: 'KV cache %' },
        },
      },
    });
    this.throughput = lineChart(canvas('c-tps'), 'tokens/s', {
      plugins: plugins(),
      scales: {
        x: { type: 'linear', title: { display: true, text: 'seconds' } },
        y: { beginAtZero: true, title: { display: true, text: 'tokens/s' } },
        y1: {
          position: 'right',
          beginAtZero: true,
          grid: { drawOnChartArea: false },
          title: { display: true, text: 'in flight' },
        },
      },
    });
    // Points are already {x, y} numbers: chart.js need not parse thousands of them on every update.
    this.latency = scatterChart(canvas('c-lat'), 'seconds', 'latency (s)', { parsing: false });
  }

  snapshot(state: LiveState): void {
    this.state = state;
    vscode.setState({ runId: state.runId });
    this.perGpu = state.gpus.map(() => new ThinnedSeries());
    this.total = new ThinnedSeries();
    for (const sample of state.samples) this.addSample(sample);
    this.running = new ThinnedSeries();
    this.kv = new ThinnedSeries();
    for (const e of state.engine ?? []) this.addEngine(e);
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
    const engineBefore = this.running.data.length + this.kv.data.length;
    for (const e of m.engine ?? []) {
      (s.engine ??= []).push(e);
      this.addEngine(e);
    }
    // The engine's series join the chart when its first scrape arrives.
    const engineStarted = engineBefore === 0 && this.running.data.length + this.kv.data.length > 0;
    if (this.perGpu.length !== s.gpus.length || engineStarted) this.buildDatasets();
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
    const { phase, currentPoint, points, status, message, summary, capW, idleW } = m;
    Object.assign(s, { phase, currentPoint, points, status, message, summary, capW, idleW });
    if (capChanged) this.buildDatasets();
    this.schedule(
      ...(m.samples.length || capChanged || m.engine?.length ? (['power'] as const) : []),
      ...(m.throughput.length ? (['throughput'] as const) : []),
      ...(m.latency.length ? (['latency'] as const) : []),
      'text',
    );
  }

  private addSample({ t, p, total }: LiveState['samples'][number]): void {
    p.forEach((w, i) => {
      const series = (this.perGpu[i] ??= new ThinnedSeries());
      if (Number.isFinite(w)) series.push(t, w);
    });
    this.total.push(t, total ?? p.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0));
  }

  private addEngine({ t, running, kv }: NonNullable<LiveState['engine']>[number]): void {
    if (running !== undefined) this.running.push(t, running);
    if (kv !== undefined) this.kv.push(t, kv * 100);
  }

  /** Dataset objects are made once (and again only when GPUs, the cap or the idle line change). */
  private buildDatasets(): void {
    const s = this.state!;
    const gpuCount = s.gpus.length;
    /** A horizontal line (idle, cap) from t = 0 to the latest sample: draw() moves its end. */
    const flat = (value: number | null, label: string, i: number): ChartDataset<'line', XY[]> | undefined =>
      value === null
        ? undefined
        : {
            label,
            data: [
              { x: 0, y: value },
              { x: 0, y: value },
            ],
            borderColor: color(i),
            borderDash: [6, 4],
            borderWidth: 1,
          };
    const gpuLine = (g: string, i: number) => ({
      label: `GPU ${g}`,
      data: (this.perGpu[i] ??= new ThinnedSeries()).data,
      borderColor: color(i),
    });
    const foreground = () => css('--vscode-editor-foreground', '#ccc');
    const engineLine = (label: string, series: ThinnedSeries, i: number, yAxisID: string) => ({
      label,
      data: series.data,
      borderColor: color(i),
      borderWidth: 2,
      yAxisID,
      stepped: yAxisID === 'y1',
    });
    const cap = s.capW === null ? null : s.capW * Math.max(1, gpuCount);
    this.power!.data.datasets = [
      ...s.gpus.map(gpuLine),
      ...(gpuCount > 1 ? [{ label: 'total', data: this.total.data, borderColor: foreground(), borderWidth: 2 }] : []),
      flat(s.idleW, 'idle baseline (total)', 4),
      flat(cap, gpuCount > 1 ? 'power cap × GPUs' : 'power cap', 5),
      ...(this.running.data.length ? [engineLine('engine: running requests', this.running, 2, 'y1')] : []),
      ...(this.kv.data.length ? [engineLine('engine: KV cache %', this.kv, 3, 'y2')] : []),
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
  private schedule(...parts: Part[]): void {
    for (const p of parts) this.dirty.add(p);
    this.frame ??= requestAnimationFrame(() => {
      this.frame = undefined;
      this.render();
    });
  }

  /**
   * Draws what changed; the `wattbench:live-render` performance measure lets DevTools
   * (and npm run bench) time it.
   */
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
      for (const d of this.power!.data.datasets) {
        if ((d as { borderDash?: number[] }).borderDash) (d.data[1] as XY).x = end;
      }
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
    const cancel = document.getElementById('cancel') as HTMLElement;
    cancel.style.display = ['running', 'reconnecting'].includes(s.status) ? '' : 'none';
    const measured = new Map((s.summary?.points ?? []).map((p) => [p.point, p]));
    const head = ths([
      'point',
      'status',
      'J/token predicted',
      'measured',
      'W predicted',
      'measured',
      'tok/s predicted',
      'measured',
    ]);
    document.getElementById('points')!.innerHTML =
      `<tr>${head}</tr>` +
      s.points
        .map((p) => {
          const m = measured.get(p.id);
          const cells = tds([
            p.label,
            p.status,
            fmt(p.predicted?.j_per_output_token),
            fmt(m?.j_per_output_token),
            fmt(p.predicted?.avg_power_w_total),
            fmt(m?.energy.avg_power_w),
            fmt(p.predicted?.output_tokens_per_s),
            fmt(m?.throughput.output_tokens_per_s),
          ]);
          return `<tr>${cells}</tr>`;
        })
        .join('');
  }
}
