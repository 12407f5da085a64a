/**
 * Percentiles in fixed memory: log-spaced buckets 1% apart (relative error ≤ 0.5%), so a day-long
 * run's million latencies cost the same memory as a minute's.
 */
const GAMMA = 1.01;
const LOG_GAMMA = Math.log(GAMMA);
const MIN_VALUE = 1e-6;

export interface Percentiles {
  n: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
}

export class Histogram {
  private readonly counts = new Map<number, number>();
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
    const bucket = Math.ceil(Math.log(value) / LOG_GAMMA);
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + 1);
  }

  get count(): number {
    return this.n;
  }

  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const rank = q * (this.n - 1);
    if (rank < this.zeros) return 0;
    let seen = this.zeros;
    for (const bucket of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(bucket)!;
      if (seen > rank) {
        // The bucket's midpoint in log space, clamped to what was actually seen.
        const value = (2 * GAMMA ** bucket) / (GAMMA + 1);
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
