/**
 * Fitting the prior's free numbers (roofline.ts PriorParams) to published measurements, and the
 * leave-one-model-out check that gives the prior its honest, out-of-sample error (scripts/accuracy.ts).
 */
import { resolveMeasurement, type Measurement } from './calibrate';
import { nelderMead } from './optimize';
import { predictPointUsing } from './predict';
import type { Prediction } from './prediction';
import type { LeaderboardPoint } from './leaderboard';
import { PRIOR_START, type PriorParams } from './roofline';

/** A free number: where it lives in PriorParams and the physical range it is held in. */
interface FreeParam {
  path: string;
  lo: number;
  hi: number;
}

/** What the fit varies. The rest (cap exponent, inter-node terms, prefill) is fitted elsewhere or not seen in the data. */
export const FREE_PARAMS: readonly FreeParam[] = [
  { path: 'weightStreamEfficiency', lo: 0.4, hi: 0.95 },
  { path: 'kvStreamEfficiency', lo: 0.2, hi: 0.95 },
  { path: 'decodeMfu', lo: 0.1, hi: 0.9 },
  { path: 'stepOverheadS', lo: 1e-4, hi: 2e-2 },
  { path: 'layerOverheadS', lo: 1e-7, hi: 1e-4 },
  { path: 'seqOverheadS', lo: 1e-7, hi: 3e-4 },
  { path: 'allReduceHopLatencyS', lo: 1e-7, hi: 3e-5 },
  { path: 'expertStreamEfficiency', lo: 0.1, hi: 0.95 },
  { path: 'moeLayerOverheadS', lo: 1e-7, hi: 3e-4 },
  { path: 'expertParallelLatencyS', lo: 1e-7, hi: 3e-4 },
  { path: 'expertParallelImbalance', lo: 1, hi: 3 },
  { path: 'blockFp8StreamFactor', lo: 0.2, hi: 1 },
  { path: 'expertUtil', lo: 0.05, hi: 1 },
  { path: 'memoryPowerExponent', lo: 0.001, hi: 2 },
  { path: 'util.weights', lo: 0.05, hi: 1 },
  { path: 'util.overhead', lo: 0.02, hi: 1 },
  { path: 'util.seqOverhead', lo: 0.02, hi: 1 },
  { path: 'util.comm', lo: 0.05, hi: 1 },
];

function get(p: PriorParams, path: string): number {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], p) as number;
}

/** A copy of `base` with the free numbers set from log-space coordinates, each clamped to its range. */
export function priorFrom(base: PriorParams, logs: readonly number[]): PriorParams {
  const out = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  FREE_PARAMS.forEach((f, i) => {
    const keys = f.path.split('.');
    const holder = keys.slice(0, -1).reduce((o, k) => o[k] as Record<string, unknown>, out);
    holder[keys[keys.length - 1]!] = Math.min(f.hi, Math.max(f.lo, Math.exp(logs[i]!)));
  });
  return out as unknown as PriorParams;
}

export function logsOf(p: PriorParams): number[] {
  return FREE_PARAMS.map((f) => Math.log(get(p, f.path)));
}

export type FitMetric = 'j_per_output_token' | 'output_tokens_per_s' | 'avg_power_w';
export const FIT_METRICS: readonly FitMetric[] = ['j_per_output_token', 'output_tokens_per_s', 'avg_power_w'];

/** The prediction for a measurement under `prior`, or undefined when the point cannot be predicted (does not fit). */
export function predictWith(m: Measurement, prior: PriorParams): Prediction | undefined {
  try {
    return predictPointUsing(resolveMeasurement(m).request, { prior });
  } catch {
    return undefined;
  }
}

export interface LossOptions {
  /**
   * Width of the pseudo-Huber loss on log errors: squared below it, absolute above. The targets are
   * medians, and a few host-bound or noisy rows should not pull every other prediction.
   */
  huber?: number;
  /** Weight of each metric; J/token carries energy and time at once. */
  weights?: Partial<Record<FitMetric, number>>;
}

export const DEFAULT_LOSS: Required<LossOptions> = { huber: 0.1, weights: { j_per_output_token: 2, output_tokens_per_s: 1, avg_power_w: 1 } };

/** Mean pseudo-Huber log error over every metric each measurement has; a point that cannot be predicted costs a large error. */
export function priorLoss(points: readonly Measurement[], prior: PriorParams, loss: LossOptions = DEFAULT_LOSS): number {
  const d = loss.huber ?? DEFAULT_LOSS.huber;
  const w = { ...DEFAULT_LOSS.weights, ...loss.weights };
  const rho = (e: number) => (d > 0 ? d * d * (Math.sqrt(1 + (e / d) ** 2) - 1) : e * e);
  let s = 0;
  let n = 0;
  for (const m of points) {
    const p = predictWith(m, prior);
    for (const k of FIT_METRICS) {
      const measured = m[k];
      if (!(measured !== undefined && measured > 0)) continue;
      const wk = w[k] ?? 1;
      s += wk * (p ? rho(Math.log(p[k] / measured)) : rho(2));
      n += wk;
    }
  }
  return n ? s / n : 0;
}

export interface PriorFit {
  prior: PriorParams;
  loss: number;
  iterations: number;
}

export interface FitOptions {
  start?: PriorParams;
  loss?: LossOptions;
  maxIterations?: number;
  /** Pull of each log coordinate toward the start: keeps numbers the data cannot see where physics put them. */
  ridge?: number;
}

/** Nelder–Mead in log space over FREE_PARAMS, restarted once from its own answer (the simplex collapses early in 17 dimensions). */
export function fitPrior(points: readonly Measurement[], opts: FitOptions = {}): PriorFit {
  const start = opts.start ?? PRIOR_START;
  const x0 = logsOf(start);
  const ridge = opts.ridge ?? 1e-4;
  const f = (x: number[]) => priorLoss(points, priorFrom(start, x), opts.loss) + ridge * x.reduce((a, xi, i) => a + (xi - x0[i]!) ** 2, 0);
  const maxIterations = opts.maxIterations ?? 1500;
  let best = nelderMead(f, x0, { step: 0.3, maxIterations, tolerance: 1e-7 });
  let iterations = best.iterations;
  const again = nelderMead(f, best.x, { step: 0.1, maxIterations: Math.ceil(maxIterations / 2), tolerance: 1e-7 });
  iterations += again.iterations;
  if (again.value < best.value) best = again;
  return { prior: priorFrom(start, best.x), loss: priorLoss(points, priorFrom(start, best.x), opts.loss), iterations };
}

/** The fitted free numbers only, as data/prior.json keeps them. */
export function fittedNumbers(p: PriorParams): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of FREE_PARAMS) {
    const keys = f.path.split('.');
    const holder = keys.slice(0, -1).reduce((o, k) => (o[k] ??= {}) as Record<string, unknown>, out);
    holder[keys[keys.length - 1]!] = Number(get(p, f.path).toPrecision(4));
  }
  return out;
}

export interface HeldOut {
  point: LeaderboardPoint;
  prediction: Prediction | undefined;
}

/**
 * Leave one model family out: for each family, fit the prior to every other family's points (from
 * PRIOR_START, as the full fit does) and predict the held-out family's points with it.
 */
export function leaveOneFamilyOut(points: readonly LeaderboardPoint[], opts: FitOptions & { onFold?: (family: string, i: number, n: number) => void } = {}): HeldOut[] {
  const families = [...new Set(points.map((p) => p.family))];
  const out: HeldOut[] = [];
  families.forEach((family, i) => {
    opts.onFold?.(family, i, families.length);
    const train = points.filter((p) => p.family !== family).map((p) => p.measurement);
    const { prior } = fitPrior(train, opts);
    for (const point of points.filter((p) => p.family === family)) out.push({ point, prediction: predictWith(point.measurement, prior) });
  });
  return out;
}
