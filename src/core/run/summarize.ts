/**
 * Every metric of a run, computed from its events by one pure function, so a stored run can always be
 * re-summarised. Incremental (`Summarizer.add`) with memory bounded by the number of points and GPUs,
 * not of events: the live view and a day-long run use the same code.
 */
import type { CostSettings } from '../config/model';
import { DEFAULT_COST } from '../config/model';
import type { AgentEvent, HelloEvent, RequestEvent, SampleEvent } from '../protocol/events';
import type { EnergySummary, GpuEnergy, PointSummary, RepeatSpread, RepeatSummary, RunSummary } from '../protocol/summary';
import { RuntimeFit } from '../estimate/idealized';
import { Histogram } from './histogram';
import { objectivesFor, SloAccumulator, type SloPlan } from './slo';
import { EngineStats } from './engine-stats';
import { ClientStats } from './client-stats';

interface GpuAccumulator {
  energy: number;
  time: number;
  peak: number;
  counterSegments: number;
  integralSegments: number;
}

/** A time window over which power is integrated; `end` is unknown while it is open. */
class EnergyWindow {
  readonly gpus = new Map<string, GpuAccumulator>();
  end = Infinity;
  /** `node`: the window holds only that node's GPUs (a point or baseline of one host of several). */
  constructor(
    readonly start: number,
    readonly node?: string,
  ) {}

  holds(gpu: string): boolean {
    return this.node === undefined || gpu.startsWith(`${this.node}:`);
  }

  /** `averaged`: s1.p is the mean power over [t0, t1] (not a reading at t1), so it integrates as a step. */
  addSegment(gpu: string, seg: Segment, averaged = false): void {
    if (!this.holds(gpu)) return;
    this.account(gpu, seg, Math.max(seg.t0, this.start), Math.min(seg.t1, this.end), averaged, 1);
  }

  /**
   * The window was closed at a time inside a segment it had already taken whole (the agent took that
   * sample just before it wrote the event that ends the window): give back the part after the end.
   */
  trimAfterEnd(gpu: string, seg: Segment, averaged = false): void {
    if (!this.holds(gpu)) return;
    this.account(gpu, seg, Math.max(seg.t0, this.start, this.end), seg.t1, averaged, -1);
  }

  private account(gpu: string, { t0, s0, t1, s1 }: Segment, a: number, b: number, averaged: boolean, sign: 1 | -1): void {
    if (!(b > a) || !(t1 > t0)) return;
    const at = (t: number, v0: number, v1: number) => v0 + ((v1 - v0) * (t - t0)) / (t1 - t0);
    let acc = this.gpus.get(gpu);
    if (!acc) this.gpus.set(gpu, (acc = { energy: 0, time: 0, peak: 0, counterSegments: 0, integralSegments: 0 }));
    const counterUsable = s0.e !== undefined && s1.e !== undefined && s1.e >= s0.e;
    if (counterUsable) {
      acc.energy += sign * (at(b, s0.e!, s1.e!) - at(a, s0.e!, s1.e!));
      if (sign > 0) acc.counterSegments++;
    } else {
      acc.energy += sign * (averaged ? s1.p * (b - a) : ((at(a, s0.p, s1.p) + at(b, s0.p, s1.p)) / 2) * (b - a));
      if (sign > 0) acc.integralSegments++;
    }
    acc.time += sign * (b - a);
    if (sign > 0 && t1 <= this.end && t1 >= this.start) acc.peak = Math.max(acc.peak, s1.p);
    if (sign > 0 && t0 >= this.start && t0 <= this.end) acc.peak = Math.max(acc.peak, s0.p);
  }

  totalEnergy(): number {
    let total = 0;
    for (const acc of this.gpus.values()) total += acc.energy;
    return total;
  }

  summary(idlePerGpu: Record<string, number> | undefined, duration: number): EnergySummary {
    const perGpu: GpuEnergy[] = [...this.gpus.entries()]
      .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
      .map(([gpu, acc]) => ({ gpu, energy_j: acc.energy, avg_power_w: acc.time > 0 ? acc.energy / acc.time : 0, peak_power_w: acc.peak }));
    const total = perGpu.reduce((s, g) => s + g.energy_j, 0);
    const counter = [...this.gpus.values()].reduce((s, a) => s + a.counterSegments, 0);
    const integral = [...this.gpus.values()].reduce((s, a) => s + a.integralSegments, 0);
    const idle = idlePerGpu ? perGpu.reduce((s, g) => s + (idlePerGpu[g.gpu] ?? 0) * duration, 0) : 0;
    return {
      method: counter && integral ? 'mixed' : counter ? 'counter' : integral ? 'integral' : 'none',
      total_j: total,
      idle_j: idle,
      dynamic_j: Math.max(0, total - idle),
      avg_power_w: duration > 0 ? total / duration : 0,
      peak_power_w: perGpu.reduce((s, g) => s + g.peak_power_w, 0),
      per_gpu: perGpu,
    };
  }
}

interface Sample {
  p: number;
  e?: number;
}

/** Two consecutive samples of one GPU. */
interface Segment {
  t0: number;
  s0: Sample;
  t1: number;
  s1: Sample;
}

/** Starting resolution of the steady-state bookkeeping, in seconds; it coarsens as a point runs long. */
const STEP_S = 0.5;
/** Entries kept per point before the resolution is halved: memory bounded by points, not by duration. */
const MAX_ENTRIES = 1024;

/**
 * Output tokens over time in bins of `step` seconds, each request's tokens spread evenly over its
 * decode. When there are too many bins, neighbours merge and the step doubles.
 */
export class TokenTimeline {
  private bins = new Map<number, number>();
  private step = STEP_S;

  add(origin: number, from: number, to: number, tokens: number): void {
    const a = Math.max(0, from - origin);
    const b = Math.max(a, to - origin);
    if (b - a < 1e-9) this.put(Math.floor(a / this.step), tokens);
    else
      for (let bin = Math.floor(a / this.step); bin * this.step < b; bin++) {
        const overlap = Math.min(b, (bin + 1) * this.step) - Math.max(a, bin * this.step);
        if (overlap > 0) this.put(bin, (tokens * overlap) / (b - a));
      }
    if (this.bins.size > MAX_ENTRIES) this.coarsen();
  }

  private put(bin: number, tokens: number): void {
    this.bins.set(bin, (this.bins.get(bin) ?? 0) + tokens);
  }

  private coarsen(): void {
    const merged = new Map<number, number>();
    for (const [bin, tokens] of this.bins) merged.set(bin >> 1, (merged.get(bin >> 1) ?? 0) + tokens);
    this.bins = merged;
    this.step *= 2;
  }

  /** Tokens generated in the first `t` seconds (the last bin split evenly). */
  before(t: number): number {
    let total = 0;
    for (const [bin, tokens] of this.bins) {
      const start = bin * this.step;
      if (start + this.step <= t) total += tokens;
      else if (start < t) total += (tokens * (t - start)) / this.step;
    }
    return total;
  }
}

/** Cumulative energy of a window over time, thinned by half whenever it grows past MAX_ENTRIES. */
export class EnergyCurve {
  readonly points: [number, number][] = [];
  private step = STEP_S;

  record(t: number, joules: number, final: boolean): void {
    const last = this.points[this.points.length - 1];
    if (last && t - last[0] < this.step && !(final && last[0] < t)) return;
    this.points.push([t, joules]);
    if (this.points.length > MAX_ENTRIES) {
      const kept = this.points.filter((_, i) => i % 2 === 1 || i === this.points.length - 1);
      this.points.splice(0, this.points.length, ...kept);
      this.step *= 2;
    }
  }
}

/** The cumulative energy curve read at `t` seconds into the window (linear between its points). */
function energyAt(curve: [number, number][], t: number): number | undefined {
  if (!curve.length) return undefined;
  let previous: [number, number] = [0, 0];
  for (const point of curve) {
    if (point[0] >= t) return previous[1] + ((point[1] - previous[1]) * (t - previous[0])) / Math.max(1e-9, point[0] - previous[0]);
    previous = point;
  }
  return previous[1];
}

/** One repeat of a point: its own measure window, tokens and requests (`repeats: N` measures N times). */
class RepeatMeasure {
  readonly curve = new EnergyCurve();
  readonly tokens = new TokenTimeline();
  lastSend = -Infinity;
  okCount = 0;
  inputTokens = 0;
  outputTokens = 0;
  /** Set once the energy curve holds the window's end: later samples need not visit it. */
  final = false;
  constructor(
    readonly repeat: number,
    readonly window: EnergyWindow,
  ) {}
}

class PointAccumulator {
  status: PointSummary['status'] = 'running';
  readonly repeats: RepeatMeasure[] = [];
  okCount = 0;
  errors = 0;
  warmup = 0;
  inputTokens = 0;
  outputTokens = 0;
  firstStart = Infinity;
  lastEnd = -Infinity;
  readonly ttft = new Histogram();
  readonly itl = new Histogram();
  readonly e2e = new Histogram();
  /** HELM's latency ≈ α + β·(output_tokens − 1) over this point's requests. */
  readonly idealized = new RuntimeFit();
  /** Measured successful requests by how their tokens were counted. */
  readonly tokensFrom = { usage: 0, chunks: 0, reported: 0 };
  throttled = 0;
  /** The limit the agent set before measuring, from its `cap` event: not the config's wish, which can fail. */
  powerCapW?: number;
  readonly engine = new EngineStats();
  readonly client = new ClientStats();
  constructor(
    readonly id: string,
    readonly slo?: SloAccumulator,
  ) {}

  /** The repeat a request or phase belongs to; events without `repeat` belong to the latest. */
  measureOf(repeat: number | undefined): RepeatMeasure | undefined {
    if (repeat === undefined) return this.repeats[this.repeats.length - 1];
    for (let i = this.repeats.length - 1; i >= 0; i--) if (this.repeats[i].repeat === repeat) return this.repeats[i];
    return undefined;
  }
}

export interface SummarizeOptions {
  cost?: CostSettings;
  /**
   * Each node runs points of its own (a sweep over several hosts), so a point's or an idle baseline's
   * energy is its node's GPUs only. Off for Slurm, where every node's GPUs serve node 0's points.
   */
  pointsPerNode?: boolean;
  /** Each point's service-level objectives (slo.ts): attainment, goodput and J per SLO-meeting token. */
  slo?: SloPlan;
}

export class Summarizer {
  private readonly points = new Map<string, PointAccumulator>();
  private readonly lastSample = new Map<string, { t: number; s: Sample }>();
  /**
   * The newest segment of each GPU. The agent timestamps a sample before it writes it, so a sample can
   * land just after the event that opens or closes a window at an earlier time: windows opened or
   * closed inside a segment already counted take or give back their part of it.
   */
  private readonly lastSegment = new Map<string, { seg: Segment; averaged: boolean }>();
  private readonly openWindows = new Set<EnergyWindow>();
  private readonly whole = new EnergyWindow(-Infinity);
  /** Idle windows: one per agent (each node or host of a run measures its own). */
  private baselines: EnergyWindow[] = [];
  /** The baseline being measured, by node ('' unless points are per node). */
  private readonly baseline = new Map<string, EnergyWindow>();
  private hellos: HelloEvent[] = [];
  /** Nodes ('' for a single host) whose power readings are means over the sampling interval. */
  private readonly averagedNodes = new Set<string>();
  private firstT = Infinity;
  private lastT = -Infinity;
  private samples = 0;
  private sampleSpan = { first: Infinity, last: -Infinity };
  private status: RunSummary['status'] = 'running';
  private capsRestored: boolean | null = null;
  /** Each agent's power limit in force (by node, '' for one host), from its `cap` events. */
  private readonly capInForce = new Map<string, number>();
  private readonly errors: RunSummary['errors'] = [];
  readonly problems: string[] = [];

  constructor(private readonly options: SummarizeOptions = {}) {
    this.openWindows.add(this.whole);
  }

  add(event: AgentEvent): void {
    if (event.t < this.firstT) this.firstT = event.t;
    if (event.t > this.lastT) this.lastT = event.t;
    switch (event.type) {
      case 'hello':
        this.hellos.push(event);
        if (event.telemetry?.power_reading === 'interval_average') this.averagedNodes.add(event.node ?? '');
        break;
      case 'phase':
        this.onPhase(event.phase, event.point, event.repeat, event.t, this.options.pointsPerNode ? event.node : undefined);
        if (event.phase === 'measure' && event.point) this.point(event.point).powerCapW = this.capInForce.get(event.node ?? '');
        break;
      case 'cap': {
        const limits = event.gpus.map((g) => g.to_w).filter((w) => typeof w === 'number' && Number.isFinite(w));
        if (event.action === 'set' && limits.length) this.capInForce.set(event.node ?? '', Math.max(...limits));
        else this.capInForce.delete(event.node ?? '');
        break;
      }
      case 'sample':
        this.onSample(event);
        break;
      case 'request':
        this.onRequest(event);
        break;
      case 'point': {
        const acc = this.point(event.point);
        if (event.state === 'start') acc.status = 'running';
        else {
          acc.status = event.status ?? 'ok';
          acc.client.add(event);
          this.close(acc.measureOf(event.repeat)?.window, event.t);
        }
        break;
      }
      case 'error':
        this.errors.push({ where: event.where, message: event.message, point: event.point });
        break;
      case 'engine': {
        // Only scrapes inside the point's (latest repeat's) measure window: warm-up and drain are not measured.
        const m = event.point !== undefined ? this.points.get(event.point)?.measureOf(undefined) : undefined;
        if (m && event.t >= m.window.start && event.t <= m.window.end) this.point(event.point!).engine.add(event.values, m.repeat);
        break;
      }
      case 'done':
        this.status = event.status;
        this.capsRestored = event.caps_restored;
        for (const acc of this.points.values()) if (acc.status === 'running') acc.status = event.status === 'ok' ? 'ok' : event.status;
        break;
      default:
        break;
    }
  }

  private point(id: string): PointAccumulator {
    let acc = this.points.get(id);
    if (!acc) {
      const objectives = objectivesFor(this.options.slo, id);
      this.points.set(id, (acc = new PointAccumulator(id, objectives && new SloAccumulator(objectives))));
    }
    return acc;
  }

  private open(start: number, node?: string): EnergyWindow {
    const window = new EnergyWindow(start, node);
    this.openWindows.add(window);
    for (const [gpu, { seg, averaged }] of this.lastSegment) if (seg.t1 > start) window.addSegment(gpu, seg, averaged);
    return window;
  }

  private close(window: EnergyWindow | undefined, t: number): void {
    if (!window || window.end !== Infinity) return;
    window.end = t;
    for (const [gpu, { seg, averaged }] of this.lastSegment) if (seg.t1 > t) window.trimAfterEnd(gpu, seg, averaged);
  }


  private onPhase(phase: string, pointId: string | undefined, repeat: number | undefined, t: number, node: string | undefined): void {
    const baseline = this.baseline.get(node ?? '');
    if (baseline && baseline.end === Infinity && phase !== 'baseline') this.close(baseline, t);
    if (phase === 'baseline') {
      const opened = this.open(t, node);
      this.baseline.set(node ?? '', opened);
      this.baselines.push(opened);
    }
    if (!pointId) return;
    const acc = this.point(pointId);
    // Each repeat is measured in its own window; a repeated `measure` of one repeat keeps the first.
    if (phase === 'measure' && (acc.repeats.length === 0 || (repeat !== undefined && !acc.measureOf(repeat))))
      acc.repeats.push(new RepeatMeasure(repeat ?? 0, this.open(t, node)));
    // The agent marks the end of measurement with `cooldown` (every request answered).
    if (phase === 'cooldown') this.close(acc.measureOf(repeat)?.window, t);
  }

  private onSample(event: SampleEvent): void {
    this.samples++;
    this.sampleSpan.first = Math.min(this.sampleSpan.first, event.t);
    this.sampleSpan.last = Math.max(this.sampleSpan.last, event.t);
    for (const g of event.gpus) {
      if (typeof g.p_w !== 'number' || !Number.isFinite(g.p_w)) continue;
      const key = event.node ? `${event.node}:${g.i}` : String(g.i);
      const sample: Sample = { p: g.p_w, e: typeof g.e_j === 'number' && Number.isFinite(g.e_j) ? g.e_j : undefined };
      const previous = this.lastSample.get(key);
      if (previous && event.t > previous.t) {
        const seg: Segment = { t0: previous.t, s0: previous.s, t1: event.t, s1: sample };
        const averaged = this.averagedNodes.has(event.node ?? '');
        this.lastSegment.set(key, { seg, averaged });
        for (const window of this.openWindows) window.addSegment(key, seg, averaged);
      }
      if (!previous || event.t > previous.t) this.lastSample.set(key, { t: event.t, s: sample });
    }
    for (const acc of this.points.values()) {
      for (let i = acc.repeats.length - 1; i >= 0; i--) {
        const r = acc.repeats[i];
        if (r.final) break;
        const m = r.window;
        if (event.t < m.start) continue;
        r.final = m.end !== Infinity && event.t >= m.end;
        r.curve.record(Math.min(event.t, m.end) - m.start, m.totalEnergy(), r.final);
      }
    }
    // A closed window is final once every GPU it holds has samples past its end.
    for (const window of this.openWindows) {
      if (window.end === Infinity) continue;
      let oldest = Infinity;
      for (const [gpu, last] of this.lastSample) if (window.holds(gpu)) oldest = Math.min(oldest, last.t);
      if (oldest >= window.end) this.openWindows.delete(window);
    }
  }

  private onRequest(r: RequestEvent): void {
    const acc = this.point(r.point);
    if (r.warmup) {
      acc.warmup++;
      return;
    }
    acc.slo?.add(r);
    if (!r.ok) {
      acc.errors++;
      if (r.http_status === 429 || r.http_status === 503) acc.throttled++;
      return;
    }
    acc.okCount++;
    acc.tokensFrom[r.tokens_from === 'usage' || r.tokens_from === 'chunks' ? r.tokens_from : 'reported']++;
    acc.inputTokens += r.prompt_tokens ?? 0;
    acc.outputTokens += r.output_tokens ?? 0;
    acc.firstStart = Math.min(acc.firstStart, r.t_start);
    acc.lastEnd = Math.max(acc.lastEnd, r.t_end);
    const m = acc.measureOf(r.repeat);
    if (m) {
      m.okCount++;
      m.inputTokens += r.prompt_tokens ?? 0;
      m.outputTokens += r.output_tokens ?? 0;
      m.lastSend = Math.max(m.lastSend, r.t_start);
      if (r.output_tokens > 0) m.tokens.add(m.window.start, r.t_start + (r.ttft_s ?? 0), r.t_end, r.output_tokens);
    }
    if (typeof r.ttft_s === 'number') acc.ttft.add(r.ttft_s);
    acc.e2e.add(r.latency_s);
    for (const itl of r.itl_s ?? []) acc.itl.add(itl);
    acc.idealized.add(Math.max(1, r.output_tokens ?? 1), r.latency_s);
  }

  private repeatFigures(r: RepeatMeasure, idlePerGpu: Record<string, number> | undefined) {
    const start = r.window.start;
    const end = r.window.end !== Infinity ? r.window.end : this.lastT;
    const duration = Math.max(0, end - start);
    const energy = r.window.summary(idlePerGpu, duration);
    const steadyEnd = Math.min(r.lastSend, end);
    const steadyDuration = steadyEnd - start;
    const steadyJoules = steadyDuration > 0 ? energyAt(r.curve.points, steadyDuration) : undefined;
    const steady = steadyJoules !== undefined ? { end: steadyEnd, duration: steadyDuration, joules: steadyJoules, tokens: r.tokens.before(steadyDuration) } : undefined;
    const figures: RepeatSummary = {
      repeat: r.repeat,
      duration_s: duration,
      energy_j: energy.total_j,
      requests: r.okCount,
      output_tokens: r.outputTokens,
      output_tokens_per_s: duration > 0 ? r.outputTokens / duration : 0,
      j_per_output_token: r.outputTokens > 0 && energy.method !== 'none' ? energy.total_j / r.outputTokens : NaN,
    };
    return { start, end, duration, energy, steady, figures };
  }

  result(): RunSummary {
    const cost = this.options.cost ?? DEFAULT_COST;
    const money = (joules: number) => {
      const kwh = (joules * cost.pue) / 3.6e6;
      return { usd: kwh * cost.usdPerKwh, gco2: kwh * cost.gco2PerKwh };
    };
    let baselineDuration = 0;
    const idle: Record<string, number> = {};
    for (const window of this.baselines) {
      const duration = Math.min(window.end, this.lastT) - window.start;
      if (!(duration > 0)) continue;
      baselineDuration = Math.max(baselineDuration, duration);
      for (const g of window.summary(undefined, duration).per_gpu) if (g.avg_power_w > 0) idle[g.gpu] = g.avg_power_w;
    }
    const idlePerGpu = Object.keys(idle).length ? idle : undefined;

    const points = [...this.points.values()].map((acc): PointSummary => {
      const measured = acc.repeats.map((r) => this.repeatFigures(r, idlePerGpu));
      const start = measured[0]?.start ?? (Number.isFinite(acc.firstStart) ? acc.firstStart : this.firstT);
      const end = measured.length ? measured[measured.length - 1].end : Number.isFinite(acc.lastEnd) ? acc.lastEnd : this.lastT;
      // Repeats are measured apart: the point's time is their windows' sum, not the span across them.
      const duration = measured.length ? measured.reduce((sum, r) => sum + r.duration, 0) : Math.max(0, end - start);
      const energy = measured.length ? combineEnergy(measured.map((r) => r.energy), duration) : emptyEnergy();
      const steadyParts = measured.filter((r) => r.steady);
      const steadyDuration = steadyParts.reduce((sum, r) => sum + r.steady!.duration, 0);
      const steadyJoules = steadyParts.length ? steadyParts.reduce((sum, r) => sum + r.steady!.joules, 0) : undefined;
      const steadyTokens = steadyParts.reduce((sum, r) => sum + r.steady!.tokens, 0);
      const steadyEnd = steadyParts.length ? steadyParts[steadyParts.length - 1].steady!.end : start;
      const repeats = measured.length > 1 ? measured.map((r) => r.figures) : undefined;
      return {
        point: acc.id,
        status: acc.status,
        window: { start, end, duration_s: duration },
        steady:
          steadyJoules !== undefined
            ? {
                start,
                end: steadyEnd,
                duration_s: steadyDuration,
                output_tokens_per_s: steadyTokens / steadyDuration,
                avg_power_w: steadyJoules / steadyDuration,
                j_per_output_token: steadyTokens > 0 ? steadyJoules / steadyTokens : NaN,
              }
            : null,
        requests: { ok: acc.okCount, errors: acc.errors, warmup: acc.warmup, ...(acc.throttled && { throttled: acc.throttled }) },
        ...(acc.okCount > 0 && { tokens_from: tokensFrom(acc.tokensFrom) }),
        tokens: { input: acc.inputTokens, output: acc.outputTokens },
        throughput: {
          output_tokens_per_s: duration > 0 ? acc.outputTokens / duration : 0,
          total_tokens_per_s: duration > 0 ? (acc.outputTokens + acc.inputTokens) / duration : 0,
          requests_per_s: duration > 0 ? acc.okCount / duration : 0,
        },
        latency: { ttft_s: acc.ttft.summary(), itl_s: acc.itl.summary(), e2e_s: acc.e2e.summary() },
        energy,
        j_per_output_token: acc.outputTokens > 0 && energy.method !== 'none' ? energy.total_j / acc.outputTokens : NaN,
        j_per_response: acc.okCount > 0 && energy.method !== 'none' ? energy.total_j / acc.okCount : NaN,
        cost: money(energy.total_j),
        idealized: acc.idealized.result(),
        power_cap_w: acc.powerCapW,
        ...(repeats && { repeats, spread: spreadOf(repeats) }),
        ...(acc.slo && { slo: acc.slo.result(duration, energy.method !== 'none' ? energy.total_j : NaN) }),
        ...(acc.engine.result() && { engine: acc.engine.result() }),
        ...(acc.client.result() && { client: acc.client.result() }),
      };
    });

    const wholeStart = Number.isFinite(this.sampleSpan.first) ? this.sampleSpan.first : this.firstT;
    const wholeDuration = Number.isFinite(this.sampleSpan.last) ? this.sampleSpan.last - wholeStart : 0;
    const totalEnergy = this.whole.summary(idlePerGpu, wholeDuration);
    const measuredEnergy = points.reduce((s, p) => s + p.energy.total_j, 0);
    const outputTokens = points.reduce((s, p) => s + p.tokens.output, 0);
    const responses = points.reduce((s, p) => s + p.requests.ok, 0);
    const intervals = this.samples > 1 ? (this.sampleSpan.last - this.sampleSpan.first) / (this.samples - 1) : null;
    const hello = this.hellos[0];
    return {
      run_id: hello?.run_id ?? '',
      status: this.status,
      simulated: this.hellos.some((h) => h.simulated),
      hosts: [...new Set(this.hellos.map((h) => h.node ?? h.host))],
      gpus: this.hellos.flatMap((h) => h.gpus.map((g) => (h.node ? { ...g, node: h.node } : g))),
      telemetry: {
        source: hello?.telemetry?.source ?? 'unknown',
        interval_s: hello?.telemetry?.interval_s ?? NaN,
        // Several nodes sample in parallel: the period per node is what matters.
        achieved_interval_s: intervals === null ? null : intervals * Math.max(1, this.hellos.length),
        samples: this.samples,
      },
      idle_baseline: idlePerGpu
        ? { duration_s: baselineDuration, per_gpu_w: idlePerGpu, total_w: Object.values(idlePerGpu).reduce((a, b) => a + b, 0) }
        : null,
      points,
      total: {
        duration_s: Number.isFinite(this.lastT - this.firstT) ? this.lastT - this.firstT : 0,
        requests: responses,
        output_tokens: outputTokens,
        energy: totalEnergy,
        j_per_output_token: outputTokens > 0 && this.samples > 0 ? measuredEnergy / outputTokens : NaN,
        j_per_response: responses > 0 && this.samples > 0 ? measuredEnergy / responses : NaN,
        cost: money(totalEnergy.total_j),
      },
      errors: this.errors,
      caps_restored: this.capsRestored,
      problems: this.samples === 0 && points.length > 0 ? [...this.problems, 'no power samples were received (see agent.log): energy is unknown'] : this.problems,
    };
  }
}

function emptyEnergy(): EnergySummary {
  return { method: 'none', total_j: 0, idle_j: 0, dynamic_j: 0, avg_power_w: 0, peak_power_w: 0, per_gpu: [] };
}

/** The summary of a complete event list. */
export function summarize(events: Iterable<AgentEvent>, options: SummarizeOptions = {}): RunSummary {
  const summarizer = new Summarizer(options);
  for (const event of events) summarizer.add(event);
  return summarizer.result();
}

/** Several windows' energy as one: sums, with each GPU's mean power over the windows' total time. */
function combineEnergy(parts: EnergySummary[], duration: number): EnergySummary {
  if (parts.length === 1) return parts[0];
  const perGpu = new Map<string, GpuEnergy>();
  for (const part of parts)
    for (const g of part.per_gpu) {
      const seen = perGpu.get(g.gpu);
      perGpu.set(g.gpu, seen ? { gpu: g.gpu, energy_j: seen.energy_j + g.energy_j, avg_power_w: 0, peak_power_w: Math.max(seen.peak_power_w, g.peak_power_w) } : { ...g });
    }
  for (const g of perGpu.values()) g.avg_power_w = duration > 0 ? g.energy_j / duration : 0;
  const methods = new Set(parts.map((p) => p.method).filter((m) => m !== 'none'));
  const total = parts.reduce((sum, p) => sum + p.total_j, 0);
  const idle = parts.reduce((sum, p) => sum + p.idle_j, 0);
  return {
    method: methods.size === 0 ? 'none' : methods.size === 1 ? [...methods][0] : 'mixed',
    total_j: total,
    idle_j: idle,
    dynamic_j: Math.max(0, total - idle),
    avg_power_w: duration > 0 ? total / duration : 0,
    peak_power_w: Math.max(...parts.map((p) => p.peak_power_w)),
    per_gpu: [...perGpu.values()],
  };
}

/** How far the repeats of a point disagree: min, max and (max − min) / mean of each figure. */
function spreadOf(repeats: RepeatSummary[]): RepeatSpread {
  const of = (values: number[]) => {
    const finite = values.filter(Number.isFinite);
    if (!finite.length) return null;
    const min = Math.min(...finite);
    const max = Math.max(...finite);
    const mean = finite.reduce((a, b) => a + b, 0) / finite.length;
    return { min, max, relative: mean !== 0 ? (max - min) / Math.abs(mean) : 0 };
  };
  return {
    j_per_output_token: of(repeats.map((r) => r.j_per_output_token)),
    output_tokens_per_s: of(repeats.map((r) => r.output_tokens_per_s)),
    duration_s: of(repeats.map((r) => r.duration_s)),
  };
}

function tokensFrom(counts: { usage: number; chunks: number; reported: number }): PointSummary['tokens_from'] {
  const kinds = (Object.keys(counts) as (keyof typeof counts)[]).filter((k) => counts[k] > 0);
  return kinds.length === 1 ? kinds[0] : 'mixed';
}
