/** What every benchmark returns, and the small statistics they share. */

export interface Target {
  /** How the figure is judged: `value` (or `ratio` when there is a baseline) compared with `limit`. */
  on: 'value' | 'ratio';
  op: '<' | '>=';
  limit: number;
}

export interface Figure {
  title: string;
  value: number;
  unit: string;
  /** The same work done the plain way, measured in the same run. */
  baseline?: { value: number; unit: string; what: string };
  /** value / baseline.value */
  ratio?: number;
  /** Absent: the figure is tracked over time (bench/history.jsonl), not judged. */
  target?: Target;
  method: string;
  /** Further numbers a reader needs to trust the figure (spread, breakdowns, sizes). */
  details?: Record<string, unknown>;
}

export interface JudgedFigure extends Figure {
  met: boolean | null;
}

export function judge(figure: Figure): JudgedFigure {
  const t = figure.target;
  if (!t) return { ...figure, met: null };
  const observed = t.on === 'ratio' ? figure.ratio : figure.value;
  if (observed === undefined || !Number.isFinite(observed)) return { ...figure, met: false };
  return { ...figure, met: t.op === '<' ? observed < t.limit : observed >= t.limit };
}

export function describeTarget(figure: Pick<Figure, 'target' | 'unit'>): string {
  const t = figure.target;
  if (!t) return 'tracked';
  return t.on === 'ratio' ? `ratio ${t.op} ${t.limit}` : `${t.op} ${t.limit} ${figure.unit}`;
}

export function quantile(values: number[], q: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = q * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

export const median = (values: number[]): number => quantile(values, 0.5);

/** Milliseconds, from a high-resolution clock. */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function round(value: number, digits = 3): number {
  return Number.isFinite(value) ? Number(value.toPrecision(digits)) : value;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How a set of repeated measurements spread, for the details of a figure. */
export function spread(values: number[]): { n: number; min: number; p50: number; p90: number; max: number } {
  return { n: values.length, min: round(Math.min(...values)), p50: round(median(values)), p90: round(quantile(values, 0.9)), max: round(Math.max(...values)) };
}
