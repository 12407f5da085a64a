/**
 * Percentiles in fixed memory: log-spaced buckets 1% apart (relative error ≤ 0.5%), so a day-long
 * run's million latencies cost the same memory as a minute's.
 */
import type { Percentiles } from '../protocol/summary';

const GAMMA = 1.01;
const INV_LOG_GAMMA = 1 / Math.log(GAMMA);
const MIN_VALUE = 1e-6;
/** Buckets from 1 µs to about 11 days, in a flat array: counting is an index, not a hash lookup. */
const FIRST_BUCKET = Math.ceil(Math.log(MIN_VALUE) * INV_LOG_GAMMA);
const BUCKETS = Math.ceil(Math.log(1e6) * INV_LOG_GAMMA) - FIRST_BUCKET + 1;

export class Histogram {
  /** Allocated on the first value: most histograms of a big sweep's idle points stay empty. */
  private counts?: Uint32Array;
  private n = 0;
  private sum = 0;
  private min = Infinity;
  private max = -Infinity;
  private zeros = 0;

  add(value: number): void {
    if (!Number.isFinite(value) || value < 0) return;
    this.n++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    if (value < MIN_VALUE) {
      this.zeros++;
      return;
    }
    const bucket = Math.ceil(Math.log(value) * INV_LOG_GAMMA) - FIRST_BUCKET;
    (this.counts ??= new Uint32Array(BUCKETS))[bucket < BUCKETS ? bucket : BUCKETS - 1]++;
  }

  get count(): number {
    return this.n;
  }

  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const rank = q * (this.n - 1);
    if (rank < this.zeros) return 0;
    let seen = this.zeros;
    const counts = this.counts ?? new Uint32Array(0);
    for (let bucket = 0; bucket < counts.length; bucket++) {
      seen += counts[bucket];
      if (seen > rank) {
        // The bucket's midpoint in log space, clamped to what was actually seen.
        const value = (2 * GAMMA ** (bucket + FIRST_BUCKET)) / (GAMMA + 1);
        return Math.min(this.max, Math.max(this.min, value));
      }
    }
    return this.max;
  }

  summary(): Percentiles | undefined {
    if (this.n === 0) return undefined;
    return { n: this.n, mean: this.sum / this.n, min: this.min, max: this.max, p50: this.quantile(0.5), p90: this.quantile(0.9), p99: this.quantile(0.99) };
  }
}
