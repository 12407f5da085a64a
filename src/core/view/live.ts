/**
 * The live view's state, built from the event stream: power per GPU, throughput, latency, phase and
 * progress. Pure: the extension feeds it events and forwards its snapshots and deltas to the webview.
 */
import type { AgentEvent } from '../protocol/events';
import type { RunSummary } from '../protocol/summary';
import type { RunMeta } from '../store/store';
import type { EnginePoint, LiveState, PointInfo, SeriesPoint, HostToLive } from '../protocol/webview';

/** Above this many samples the oldest half is thinned by two: hours of data stay drawable and bounded. */
const MAX_SAMPLES = 120_000;
/**
 * Several nodes' events arrive in bursts, one node's after another's: samples and requests are held
 * this long and let out in time order, so the charts never run back in time.
 */
const MERGE_LAG_S = 1;
/** A GPU whose node has not reported for this long no longer counts toward the total. */
const STALE_S = 2;

type Timed = Extract<AgentEvent, { type: 'sample' | 'request' }>;
const timeOf = (e: Timed) => (e.type === 'request' ? e.t_end : e.t);

export class LiveTracker {
  readonly state: LiveState;
  private pendingSamples: SeriesPoint[] = [];
  private pendingThroughput: LiveState['throughput'] = [];
  private pendingLatency: LiveState['latency'] = [];
  private pendingEngine: EnginePoint[] = [];
  private readonly gpuIndex = new Map<string, number>();
  private bucket?: { second: number; tokens: number; open: number };
  /** Most requests in flight (over every node) during the current throughput second. */
  private inflightPeak = 0;
  private readonly inflightByNode = new Map<string, number>();
  /** Each GPU's latest reading, for the total when nodes sample apart. */
  private readonly latest: { t: number; w: number }[] = [];
  private held: Timed[] = [];
  private heldUnsorted = false;
  private newest = -Infinity;
  /** The latest time let out to the charts: anything later than the merge lag is drawn here. */
  private drawnUpTo = -Infinity;

  constructor(init: { runId: string; title: string; target: string; points: PointInfo[] }) {
    this.state = {
      runId: init.runId,
      title: init.title,
      target: init.target,
      simulated: false,
      gpus: [],
      t0: 0,
      idleW: null,
      capW: null,
      phase: 'starting',
      currentPoint: null,
      points: init.points,
      samples: [],
      throughput: [],
      latency: [],
      status: 'running',
    };
  }

  private rel(t: number): number {
    if (!this.state.t0) this.state.t0 = t;
    return Math.round((t - this.state.t0) * 1000) / 1000;
  }

  add(event: AgentEvent): void {
    if (event.node === undefined) return this.apply(event);
    // A node's `done` ends its part only: the run's status comes from setStatus.
    if (event.type === 'done') return;
    if (event.type !== 'sample' && event.type !== 'request') return this.apply(event);
    const t = timeOf(event);
    const last = this.held[this.held.length - 1];
    if (last && t < timeOf(last)) this.heldUnsorted = true;
    this.held.push(event);
    if (t > this.newest) {
      this.newest = t;
      this.release(t - MERGE_LAG_S);
    }
  }

  private release(upTo: number): void {
    if (!this.held.length) return;
    // Sorting only at a burst's seam: this runs for every event of a replayed day-long run.
    if (this.heldUnsorted) this.held.sort((a, b) => timeOf(a) - timeOf(b));
    this.heldUnsorted = false;
    let n = 0;
    while (n < this.held.length && timeOf(this.held[n]) <= upTo) n++;
    for (const event of this.held.splice(0, n)) this.apply(event);
  }

  private apply(event: AgentEvent): void {
    const s = this.state;
    switch (event.type) {
      case 'hello':
        s.simulated ||= event.simulated;
        for (const g of event.gpus) this.gpuKey(event.node, g.index);
        this.rel(event.t);
        break;
      case 'phase':
        s.phase = event.phase;
        if (event.point) s.currentPoint = event.point;
        this.rel(event.t);
        break;
      case 'cap':
        if (event.action === 'set') s.capW = event.gpus[0]?.to_w ?? null;
        else s.capW = null;
        break;
      case 'point': {
        const point = s.points.find((p) => p.id === event.point);
        if (point) point.status = event.state === 'start' ? 'running' : (event.status ?? 'ok');
        if (event.state === 'start') s.currentPoint = event.point;
        break;
      }
      case 'sample': {
        const p = new Array<number>(s.gpus.length).fill(NaN);
        for (const g of event.gpus) {
          const i = this.gpuKey(event.node, g.i);
          p[i] = g.p_w;
          this.latest[i] = { t: event.t, w: g.p_w };
          if (s.phase === 'baseline') s.idleW = null;
        }
        if (event.inflight !== undefined) {
          this.inflightByNode.set(event.node ?? '', event.inflight);
          let inflight = 0;
          for (const n of this.inflightByNode.values()) inflight += n;
          this.inflightPeak = Math.max(this.inflightPeak, inflight);
        }
        const t = Math.max(this.rel(event.t), this.drawnUpTo);
        this.drawnUpTo = t;
        const sample: SeriesPoint = { t, p };
        if (event.node !== undefined) {
          let total = 0;
          for (const l of this.latest) if (l && event.t - l.t <= STALE_S && Number.isFinite(l.w)) total += l.w;
          sample.total = total;
        }
        s.samples.push(sample);
        this.pendingSamples.push(sample);
        if (s.samples.length > MAX_SAMPLES) {
          const half = s.samples.length >> 1;
          s.samples = [...s.samples.slice(0, half).filter((_, i) => i % 2 === 0), ...s.samples.slice(half)];
        }
        break;
      }
      case 'request': {
        if (event.warmup || !event.ok) break;
        const second = Math.max(Math.floor(this.rel(event.t_end)), this.bucket?.second ?? -Infinity);
        if (!this.bucket || this.bucket.second !== second) {
          if (this.bucket) this.closeBucket();
          this.bucket = { second, tokens: 0, open: 0 };
        }
        this.bucket.tokens += event.output_tokens;
        const entry = { t: this.rel(event.t_end), ttft: event.ttft_s ?? NaN, e2e: event.latency_s };
        s.latency.push(entry);
        this.pendingLatency.push(entry);
        break;
      }
      case 'error':
        s.message = `${event.where}: ${event.message}`;
        break;
      case 'engine': {
        const { running, kv_cache_usage: kv } = event.values;
        if (running === undefined && kv === undefined) break;
        const entry: EnginePoint = { t: this.rel(event.t), ...(running !== undefined && { running }), ...(kv !== undefined && { kv }) };
        (s.engine ??= []).push(entry);
        this.pendingEngine.push(entry);
        if (s.engine.length > MAX_SAMPLES) s.engine = s.engine.filter((_, i) => i % 2 === 0);
        break;
      }
      case 'done':
        if (this.bucket) this.closeBucket();
        s.status = event.status;
        break;
      default:
        break;
    }
  }

  private closeBucket(): void {
    const b = this.bucket!;
    const entry = { t: b.second + 0.5, tps: b.tokens, inflight: this.inflightPeak };
    this.inflightPeak = 0;
    this.state.throughput.push(entry);
    this.pendingThroughput.push(entry);
    this.bucket = undefined;
  }

  private gpuKey(node: string | undefined, index: number): number {
    const key = node ? `${node}:${index}` : String(index);
    let i = this.gpuIndex.get(key);
    if (i === undefined) {
      i = this.state.gpus.length;
      this.gpuIndex.set(key, i);
      this.state.gpus.push(key);
    }
    return i;
  }

  setStatus(status: LiveState['status'], message?: string): void {
    this.state.status = status;
    if (status !== 'running' && status !== 'reconnecting') this.flushHeld();
    if (message !== undefined) this.state.message = message;
  }

  setSummary(summary: RunSummary): void {
    this.state.summary = summary;
    if (summary.idle_baseline) this.state.idleW = summary.idle_baseline.total_w;
  }

  /** Lets out every held event (the run ended, or a stored run was replayed). */
  flushHeld(): void {
    this.release(Infinity);
    if (this.bucket && this.state.status !== 'running') this.closeBucket();
  }

  snapshot(): HostToLive {
    this.pendingSamples = [];
    this.pendingThroughput = [];
    this.pendingLatency = [];
    this.pendingEngine = [];
    return { type: 'snapshot', state: this.state };
  }

  /** What changed since the last snapshot or delta. */
  delta(): HostToLive {
    const s = this.state;
    const message: HostToLive = {
      type: 'append',
      samples: this.pendingSamples,
      throughput: this.pendingThroughput,
      latency: this.pendingLatency,
      ...(this.pendingEngine.length && { engine: this.pendingEngine }),
      phase: s.phase,
      currentPoint: s.currentPoint,
      points: s.points,
      status: s.status,
      message: s.message,
      summary: s.summary,
      capW: s.capW,
      idleW: s.idleW,
    };
    this.pendingSamples = [];
    this.pendingThroughput = [];
    this.pendingLatency = [];
    this.pendingEngine = [];
    return message;
  }
}

/** The live view of a stored run, rebuilt from its events (after a restart, or for a run not followed here). */
export function trackerFromEvents(meta: RunMeta, events: Iterable<AgentEvent>): LiveTracker {
  const tracker = new LiveTracker({
    runId: meta.run_id,
    title: `${meta.config_name} on ${meta.target}`,
    target: meta.target,
    points: meta.points.map((p) => ({ id: p.id, label: p.label, status: 'pending' })),
  });
  for (const event of events) tracker.add(event);
  tracker.flushHeld();
  return tracker;
}
