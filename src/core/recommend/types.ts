/** What a recommendation says: the cheapest point that meets the SLO, the next one, or the closest miss. */
import type { CostSettings, SloObjectives } from '../config/model';
import type { SloMetric } from '../protocol/summary';

/** Lower is better: joules per output token, or dollars per million output tokens (energy + GPU-hours). */
export type Objective = 'j_per_token' | 'usd_per_mtoken';
export const OBJECTIVES: readonly Objective[] = ['j_per_token', 'usd_per_mtoken'];

/** One objective of the SLO against a candidate's latency. */
export interface SloCheck {
  metric: SloMetric;
  limit_s: number;
  /** Predicted (mean) or measured (at the SLO's percentile) value; null when the candidate has no figure for it. */
  value_s: number | null;
  /** value / limit: ≤ 1 meets; Infinity when unknown. */
  ratio: number;
}

export interface Candidate {
  label: string;
  gpu: string;
  gpuCount: number;
  powerCapW?: number;
  concurrency?: number;
  requestRate?: number;
  j_per_output_token: number;
  usd_per_mtoken: number;
  /** Requests and output tokens per second that meet the SLO (predicted: all of them when it is met). */
  goodput_requests_per_s: number;
  goodput_output_tokens_per_s: number;
  checks: SloCheck[];
  meets: boolean;
  /** The largest value / limit of its checks: how far it is from meeting the SLO (≤ 1: it meets it). */
  worst: number;
  prediction?: {
    basis: 'prior' | 'calibrated';
    sigma: number;
    /** ×/÷ exp(2σ): the band of J/token, and whether the SLO still holds with latencies at the band's top. */
    j_per_output_token_low: number;
    j_per_output_token_high: number;
    meets_at_band_top: boolean;
  };
  measured?: {
    run_id: string;
    point: string;
    /** Share of its measured requests that met every objective; null when judged from its percentiles. */
    attainment: number | null;
    judged_by: 'requests' | 'percentiles';
  };
}

export interface Recommendation {
  source: 'prediction' | 'measurement';
  objective: Objective;
  slo: SloObjectives;
  best?: Candidate;
  runnerUp?: Candidate;
  /** When nothing meets the SLO: the candidate nearest to meeting it. */
  closest?: Candidate;
  searched: number;
  notes: string[];
}

/** $/Mtoken: the energy's price (PUE included) plus the GPU-hours it held. */
export function usdPerMtoken(energyJ: number, runtimeS: number, gpuCount: number, outputTokens: number, cost: CostSettings): number {
  if (!(outputTokens > 0)) return NaN;
  const energyUsd = ((energyJ * cost.pue) / 3.6e6) * cost.usdPerKwh;
  const gpuUsd = (gpuCount * runtimeS * cost.usdPerGpuHour) / 3600;
  return ((energyUsd + gpuUsd) / outputTokens) * 1e6;
}

export function scoreOf(c: Candidate, objective: Objective): number {
  const v = objective === 'j_per_token' ? c.j_per_output_token : c.usd_per_mtoken;
  return Number.isFinite(v) ? v : Infinity;
}

export function checksAgainst(slo: SloObjectives, values: Partial<Record<SloMetric, number | null>>): SloCheck[] {
  const limits: [SloMetric, number | undefined][] = [['ttft', slo.ttftS], ['itl', slo.itlS], ['tpot', slo.tpotS], ['e2e', slo.e2eS]];
  return limits
    .filter((entry): entry is [SloMetric, number] => entry[1] !== undefined)
    .map(([metric, limit]) => {
      const value = values[metric];
      const known = typeof value === 'number' && Number.isFinite(value);
      return { metric, limit_s: limit, value_s: known ? value : null, ratio: known ? (limit > 0 ? value / limit : value > 0 ? Infinity : 0) : Infinity };
    });
}

export function worstOf(checks: SloCheck[]): number {
  return checks.reduce((w, c) => Math.max(w, c.ratio), 0);
}

/** The best two that meet the SLO, by the objective; else the nearest miss. */
export function choose(
  candidates: Candidate[],
  objective: Objective,
): { best?: Candidate; runnerUp?: Candidate; closest?: Candidate } {
  const meeting = candidates.filter((c) => c.meets && Number.isFinite(scoreOf(c, objective)));
  meeting.sort((a, b) => scoreOf(a, objective) - scoreOf(b, objective) || b.goodput_output_tokens_per_s - a.goodput_output_tokens_per_s);
  if (meeting.length) return { best: meeting[0], runnerUp: meeting[1] };
  const near = [...candidates].sort((a, b) => a.worst - b.worst || scoreOf(a, objective) - scoreOf(b, objective));
  return { closest: near[0] };
}
