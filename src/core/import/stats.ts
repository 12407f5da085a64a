/** Distributions recomputed from per-request values, the way the tools compute theirs (numpy's linear percentiles). */
import type { Stat } from './types';

/** numpy.percentile(values, p) with its default (linear) interpolation. */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const k = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(k);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (k - lo);
}

export function statOf(values: number[]): Stat | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    mean: sorted.reduce((s, x) => s + x, 0) / sorted.length,
    min: sorted[0],
    max: sorted[sorted.length - 1],
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
  };
}

/** Every figure of `stat` times `k` (ms → s: 1e-3); `n` stays a count. */
export function scaled(stat: Stat | undefined, k: number): Stat | undefined {
  if (!stat) return undefined;
  const out: Stat = { n: stat.n };
  for (const key of ['mean', 'min', 'max', 'p50', 'p90', 'p99'] as const) if (stat[key] !== undefined) out[key] = stat[key]! * k;
  return out;
}

/** Seconds per unit of a tool's time unit ("ms", "ns", "sec", "s", "us"), or undefined for another unit. */
export function secondsPer(unit: string): number | undefined {
  return ({ ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, sec: 1, seconds: 1 } as Record<string, number>)[unit.trim().toLowerCase()];
}
