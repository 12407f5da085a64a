/** The engine's own metrics over a point's measure windows (from `engine` events): the summary's `engine`. */
import type { EngineValues } from '../protocol/events';
import type { EngineSummary } from '../protocol/summary';

const GAUGES = ['running', 'waiting', 'kv_cache_usage'] as const;

export class EngineStats {
  private scrapes = 0;
  private readonly gauges = new Map<(typeof GAUGES)[number], { n: number; sum: number; max: number }>();
  /** Per measure window (repeat): the preemption counter's first and last reading in it. */
  private readonly preemptions = new Map<number, { first: number; last: number }>();

  add(values: EngineValues, window: number): void {
    this.scrapes++;
    for (const key of GAUGES) {
      const v = values[key];
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const g = this.gauges.get(key) ?? { n: 0, sum: 0, max: -Infinity };
      g.n++;
      g.sum += v;
      g.max = Math.max(g.max, v);
      this.gauges.set(key, g);
    }
    const p = values.preemptions_total;
    if (typeof p === 'number' && Number.isFinite(p)) {
      const seen = this.preemptions.get(window);
      if (seen) seen.last = p;
      else this.preemptions.set(window, { first: p, last: p });
    }
  }

  /** Absent when no scrape fell in a measure window. */
  result(): EngineSummary | undefined {
    if (this.scrapes === 0) return undefined;
    const out: EngineSummary = { scrapes: this.scrapes };
    for (const [key, g] of this.gauges) out[key] = { mean: g.sum / g.n, max: g.max };
    // A counter: what it rose by between the first and last scrape of each window (a restart resets it).
    if (this.preemptions.size) out.preemptions = [...this.preemptions.values()].reduce((sum, w) => sum + Math.max(0, w.last - w.first), 0);
    return out;
  }
}
